"""Quality and speed of the embedded demo model on ordinary English prose it never trained on
(20 sentences; `--text prose-60` adds 40 more), or, with `--text templates`, on held-out
sentences of its training templates.

    python -m bench.bench_demo [--model models/llasa-demo] [--sentences K] [--text prose|prose-60|templates|phrases|tuning]
                               [--clone K] [--quantize int8] [--temperature T] [--top-p P]
                               [--seeds S] [--confidence-weights W ...] [--speaker-weights W ...]

For each sentence, one best-of-8 search (seeded) with the ASR verifier (faster-whisper, Whisper
tiny.en) samples 8 i.i.d. candidates: N = 1 is the first one, best-of-4 the verifier's pick among
the first four, best-of-8 its pick among all (and, side by side, its picks with other weights of
the ASR's confidence in the target text, `--confidence-weights`: 0 is word error rate alone,
`best_of_8_confidence_weight_0`; and with the speaker verifier's similarity to the prompt's voice
added at other weights, `--speaker-weights`). Each pick is then transcribed by judge ASRs that are
not the verifier (pocketsphinx; Whisper base, `verifiers.judge`, with the `judge` extra) as well
as by the verifier's own ASR (optimistic for the picks, unbiased for N = 1); each WER also capped
at 1 an utterance, and given with its standard error over utterances; each pick's capped WER
over N = 1's comes with a 95 % interval (paired bootstrap over sentences). Sampling and the speech
cap of each candidate are serve_config.yaml's defaults (what the laptop service says; a runaway
stops at twice the text's estimated speech, deployments/long_text.py).
bench/bench_judge.py compares verifier configs on the same candidates. Also: real-time factor of
one N = 1 request (wall / audio seconds, LM and codec) with float32 LM weights, int8, and int8 with
the compiled one-row step (as serve_config.yaml serves it) side by side, and the codec round trip
(piper speech -> encode -> decode) against the unquantised speech.

Torch runs one CPU thread, as serve_config.yaml's replicas do (torch_threads: 1). In one process, a
second thread running torch ops (here the LM's scheduler thread beside the main thread's codec and
verifiers) makes libgomp throttle its spin-waiting once more OpenMP threads exist than cores: a
decode step of the 17M model then takes ~15 ms with 2 threads against ~10 ms with 1 (and ~6 ms
with 2 when a single thread runs torch).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from pathlib import Path

import numpy as np
import yaml

PROSE = (
    "The library closes early on public holidays.",
    "She poured a glass of water and sat by the fire.",
    "Our neighbours adopted a puppy from the shelter.",
    "The committee postponed its decision until next month.",
    "Fresh bread smells wonderful in the morning.",
    "He missed the bus because his alarm did not ring.",
    "Please remember to water the plants while I am away.",
    "The museum has a new exhibition about ancient Egypt.",
    "My grandmother knits warm sweaters every winter.",
    "The storm knocked down several trees along the avenue.",
    "Scientists discovered a new species of butterfly.",
    "I usually drink tea instead of coffee in the evening.",
    "The children built a sandcastle on the beach.",
    "Our flight was delayed by almost three hours.",
    "They celebrated the victory with a big dinner.",
    "The recipe needs two eggs and a cup of flour.",
    "A gentle rain fell throughout the afternoon.",
    "The doctor advised him to get more sleep.",
    "We watched the sunset from the top of the hill.",
    "The company announced record profits this quarter.",
)


# Forty more sentences of held-out prose (`--text prose-60`: PROSE, then these), written on
# 2026-12-03 before any of them was benched, because 80 utterances of PROSE left the best-of-8
# ratio's 95 % interval 0.3 wide. None is in the training text, in TUNING or in bench_judge's
# sentences; a sentence keeps its seeds (index + 1000 x repeat), so PROSE's part of a prose-60
# run samples what a prose run does.
EXTRA_PROSE = (
    "The post office opens at nine on weekdays.",
    "My brother fixed the broken fence last weekend.",
    "The soup was too salty, so we added some water.",
    "Two swans glided slowly across the pond.",
    "She keeps her old photographs in a wooden box.",
    "The bus driver waited for the last passenger.",
    "We need to buy milk, bread and cheese today.",
    "The baby finally fell asleep after lunch.",
    "The dentist told me to floss every night.",
    "The wind carried the smell of pine through the valley.",
    "He spent the whole evening repairing his bicycle.",
    "The new bridge will open to traffic next spring.",
    "I left my phone charger at the office.",
    "The garden looks beautiful after the rain.",
    "They moved to a quiet village near the coast.",
    "The waiter brought us a basket of warm rolls.",
    "Most shops in town close early on Sundays.",
    "The kitten chased a ball of yarn under the bed.",
    "She practised the piano for an hour every day.",
    "The mountain road was covered with fresh snow.",
    "We met our cousins at the station this morning.",
    "The price of petrol went up again this week.",
    "He painted a picture of the harbour at sunset.",
    "The library lends books, films and music for free.",
    "Please turn off the lights before you go to bed.",
    "The firefighters rescued a cat from the tall tree.",
    "Our team won the match in the final minute.",
    "The orchard behind the house is full of ripe plums.",
    "I would like a cup of hot chocolate, please.",
    "The students cleaned the beach on Saturday morning.",
    "My neighbour grows roses along the garden wall.",
    "The plane landed safely despite the strong wind.",
    "We spent the holiday walking in the hills.",
    "The shop on the corner sells newspapers and sweets.",
    "She found an old coin while digging in the yard.",
    "The meeting starts at ten, so please be on time.",
    "A loud noise woke everyone in the middle of the night.",
    "The carpenter built a new table for the kitchen.",
    "He always reads the news before breakfast.",
    "The children laughed at the clown in the park.",
)


# Short phrases and single words (`--text phrases`): where a model trained on sentences babbles
# most. Everyday phrases like these are also in demo.data's training text; single words there are
# drawn from lists, so some of these are unseen.
PHRASES = (
    "Hello.", "Thank you!", "Good morning.", "See you later.", "How are you?", "Excuse me.",
    "Happy birthday!", "Goodbye.", "Yes, please.", "Water.", "Tomorrow.", "Seventeen.",
)


# Sentences to choose sampling settings on (`--text tuning`), kept apart from PROSE so that the
# bench's figures are not the ones the settings were tuned on. Neither set is in the training text.
TUNING = (
    "The bakery on the corner sells fresh rolls every morning.",
    "He forgot his umbrella and walked home in the rain.",
    "We planted tomatoes and beans in the garden this spring.",
    "The train to the city leaves at half past seven.",
    "My sister is learning to play the violin.",
    "The old bridge was closed for repairs last week.",
    "Could you turn down the music a little?",
    "The teacher read a story to the whole class.",
    "They painted the kitchen a bright shade of yellow.",
    "The hotel room had a lovely view of the harbour.",
    "Our dog barks whenever the postman arrives.",
    "The concert was cancelled because of the snow.",
    "I found my keys under the sofa cushion.",
    "The farmer sold apples and pears at the market.",
    "She wrote a long letter to her best friend.",
    "The lights went out during the thunderstorm.",
    "He is saving money for a new bicycle.",
    "The river flooded the fields after the heavy rain.",
    "Please close the door quietly when you leave.",
    "The students visited a science museum on Friday.",
    "A cold wind blew across the empty parking lot.",
    "We ordered pizza and watched a film together.",
    "The nurse gave the patient a glass of juice.",
    "My uncle repairs old clocks in his workshop.",
)


def training_words(cache: Path, data: Path = Path("demo/data")) -> set[str]:
    words: set[str] = set()
    for shard in sorted((cache / "speech").glob("shard*[0-9].npz")) + sorted((data / "codes").glob("shard*[0-9].npz")):
        for text in np.load(shard)["texts"]:
            words.update(re.findall(r"[a-z']+", str(text).lower()))
    return words


def cloning(engine, sentences, sampling: dict, default_voice: dict) -> dict:
    """Zero-shot cloning of a voice no training data has (demo.voices.HELD_OUT_VOICE): speaker
    cosine (resemblyzer, the speaker verifier's embedder) between each output and the reference,
    prompted with the reference and, for comparison, with the default voice (what a request
    without a reference gets) and with no reference at all (the model's own pick). All are N = 1,
    seeded alike."""
    import asyncio

    from demo.data import load_piper, speak
    from demo.voices import HELD_OUT_VOICE, transform
    from llasa_core.demo_codec import peak_normalise
    from llasa_core.search import SearchConfig
    from verifiers.speaker import ResemblyzerEmbedder

    reference_text = "The weather today is sunny with a light breeze from the west."
    reference = peak_normalise(transform(speak(load_piper(0), reference_text, 1.0, 0.667, 0.8), HELD_OUT_VOICE))
    embedder = ResemblyzerEmbedder()
    arms = {"cloned": {"reference_audio": reference, "reference_text": reference_text}, "no_reference": {}}
    if default_voice:
        arms["default_voice"] = default_voice
    outputs = {name: [] for name in arms}
    for index, text in enumerate(sentences):
        for name, kwargs in arms.items():
            config = SearchConfig(n=1, seed=200 + index, **sampling)
            outputs[name].append(asyncio.run(engine.synthesize(text, config, **kwargs)).chosen.audio)
    unit = lambda e: e / np.linalg.norm(e, axis=-1, keepdims=True)
    target = unit(embedder.embed([reference])[0])
    sims = {name: [float(unit(e) @ target) for e in embedder.embed(audios)] for name, audios in outputs.items()}
    report = {"voice": HELD_OUT_VOICE.name, "sentences": len(sentences),
              **{f"sim_{name}_vs_reference": float(np.mean(v)) for name, v in sims.items()}}
    print(f"cloning {HELD_OUT_VOICE.name}: {report}", flush=True)
    return report


def reweighted_score(asr, weight: float) -> float:
    """The ASR verifier's score had its confidence weight been `weight` (a candidate it could not
    judge, too short or not speech, keeps its worst score)."""
    if "confidence" not in asr.detail:
        return asr.score
    return (1 - weight) * max(0.0, 1.0 - asr.raw) + weight * (asr.detail["confidence"] or 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="models/llasa-demo")
    parser.add_argument("--sentences", type=int, default=None, help="the first K of the text set (default: all)")
    parser.add_argument("--text", choices=("prose", "prose-60", "templates", "phrases", "tuning"), default="prose")
    parser.add_argument("--clone", type=int, default=0, metavar="K",
                        help="also measure zero-shot cloning of demo.voices' held-out voice on K sentences")
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=2, help="searches per sentence, seeded apart: one sample a "
                                                               "sentence moves WER by 0.1 over 20 sentences")
    parser.add_argument("--quantize", choices=("int8",), default=None, help="int8 LM weights for the searches")
    parser.add_argument("--temperature", type=float, default=None,
                        help="sampling temperature (default: serve_config.yaml's defaults.temperature)")
    parser.add_argument("--top-p", type=float, default=None, help="default: serve_config.yaml's defaults.top_p")
    parser.add_argument("--cache", default=".cache/demo", help="for the training vocabulary, if present")
    parser.add_argument("--no-default-voice", action="store_true",
                        help="prompt without a reference, ignoring serve_config.yaml's lm.default_voice")
    parser.add_argument("--confidence-weights", type=float, nargs="*", default=[0.0], metavar="W",
                        help="also pick each best-of-8 with these weights of the ASR's confidence "
                             "(the default verifier's is verifiers.asr.DEFAULT_CONFIDENCE_WEIGHT)")
    parser.add_argument("--speaker-weights", type=float, nargs="*", default=[], metavar="W",
                        help="also pick each best-of-8 by the default score plus W x the speaker verifier's "
                             "similarity to the prompt's voice (the default voice, or none: then skipped)")
    parser.add_argument("--out", default="out/bench_demo.json")
    args = parser.parse_args()

    import torch

    from demo.sentences import HELD_OUT_EXAMPLES
    from deployments.config import Defaults
    from deployments.long_text import speech_token_cap

    torch.set_num_threads(1)
    from llasa_core.codec import load_codec
    from llasa_core.engine import LlasaTTS
    from llasa_core.lm import TransformersLM
    from llasa_core.search import SearchConfig
    from llasa_core.stages import ScoreContext
    from verifiers.asr import FasterWhisperTranscriber, PocketSphinxTranscriber, error_rate
    from verifiers.registry import build_verifier
    from deployments.voices import read_voice_file
    from tests.verifier_fixtures import synthesize as piper_speech

    served = yaml.safe_load(Path("serve_config.yaml").read_text())["applications"][0]["args"]
    defaults = Defaults(**served["defaults"])
    voice_file = None if args.no_default_voice else served["lm"].get("default_voice")
    if voice_file and args.model != "models/llasa-demo":
        voice_file = f"{args.model}/{Path(voice_file).name}"  # the candidate's own
    voice = {}  # what a request without a reference gets: the default voice, or none
    if voice_file:
        default = read_voice_file(voice_file)
        voice = {"reference_audio": default.audio, "reference_text": default.transcript}
    sampling = {"temperature": defaults.temperature if args.temperature is None else args.temperature,
                "top_p": defaults.top_p if args.top_p is None else args.top_p,
                "top_k": defaults.top_k, "repetition_penalty": defaults.repetition_penalty}
    sentences = {"prose": PROSE, "prose-60": PROSE + EXTRA_PROSE, "templates": HELD_OUT_EXAMPLES, "phrases": PHRASES,
                 "tuning": TUNING}[args.text][: args.sentences]
    seen = training_words(Path(args.cache))
    unseen = sorted({w for s in sentences for w in re.findall(r"[a-z']+", s.lower())} - seen) if seen else None

    codec = load_codec(f"{args.model}/codec")
    engine = LlasaTTS(TransformersLM(f"{args.model}/lm", quantize=args.quantize), codec,
                      {"asr": build_verifier({"name": "asr", "kind": "asr"})})
    whisper = FasterWhisperTranscriber()
    judge = PocketSphinxTranscriber()
    from verifiers.judge import build_judge

    whisper_base = build_judge().transcriber
    wer = lambda text, hyp: error_rate(text, hyp, "en")[1]

    # The same candidates picked with other confidence weights, side by side with the default's pick.
    reweighted = {f"best_of_8_confidence_weight_{w:g}": w for w in args.confidence_weights}
    # ... and with the speaker verifier's similarity to the prompt's voice added (as a search with
    # outcome_verifiers {asr: 1, speaker: W} would rank them).
    speaker_weighted = {f"best_of_8_speaker_weight_{w:g}": w for w in args.speaker_weights} if voice else {}
    speaker = build_verifier({"name": "speaker", "kind": "speaker"}) if speaker_weighted else None
    picks = {"n1": [], "best_of_4": [], "best_of_8": [], **{name: [] for name in (*reweighted, *speaker_weighted)}}
    speaker_sims = []
    for repeat, (index, text) in ((r, item) for r in range(args.seeds) for item in enumerate(sentences)):
        config = SearchConfig(n=args.n, outcome_verifiers={"asr": 1.0}, seed=index + 1000 * repeat,
                              max_new_tokens=speech_token_cap(text, defaults.max_speech_tokens), **sampling)
        result = asyncio.run(engine.synthesize(text, config, **voice))
        by_id = sorted(result.candidates, key=lambda c: c.id)
        chosen = {
            "n1": by_id[0],
            "best_of_4": max(by_id[:4], key=lambda c: c.final_score),
            "best_of_8": max(by_id, key=lambda c: c.final_score),
            **{name: max(by_id, key=lambda c: reweighted_score(c.outcome_scores["asr"], w)) for name, w in reweighted.items()},
        }
        if speaker:
            context = ScoreContext(text, reference_audio=voice["reference_audio"], reference_text=voice["reference_text"])
            similarity = {c.id: s.score or 0.0 for c, s in zip(by_id, speaker.score([c.audio for c in by_id], [context] * len(by_id)))}
            speaker_sims.append(list(similarity.values()))
            chosen.update({name: max(by_id, key=lambda c: c.final_score + w * similarity[c.id])
                           for name, w in speaker_weighted.items()})
        for name, candidate in chosen.items():
            picks[name].append((text, (repeat, index, candidate.id), candidate.audio))
        # A search of one candidate scores nothing (--n 1).
        print(f"{index}: {text} | verifier WER of each candidate: "
              f"{[round(c.outcome_scores['asr'].raw, 2) for c in by_id if 'asr' in c.outcome_scores]}", flush=True)

    report: dict = {"text": args.text, "sentences": len(sentences), "seeds": args.seeds, "unseen_words": unseen,
                    "quantize": args.quantize, "default_voice": voice_file,
                    "sampling": sampling}
    if speaker_sims:
        report["speaker_similarity_to_prompt_voice"] = {
            "mean": float(np.mean(speaker_sims)), "mean_spread_within_search": float(np.mean(np.ptp(speaker_sims, axis=1)))}
    ears = {"judge_pocketsphinx": judge, "judge_whisper_base": whisper_base, "verifier_asr_whisper": whisper}
    # Each distinct candidate is transcribed once per ear, however many picks chose it.
    distinct = {key: (text, audio) for items in picks.values() for text, key, audio in items}
    sentence_errors = {}  # (pick, ear) -> capped WER summed over each sentence's seeds
    for ear, transcriber in ears.items():
        heard = dict(zip(distinct, transcriber.transcribe([audio for _, audio in distinct.values()], "en")))
        for name, items in picks.items():
            report.setdefault(name, {})
            errors = [wer(text, heard[key]) for text, key, _ in items]
            report[name][f"wer_{ear}"] = float(np.mean(errors))
            # Whisper sometimes loops on babble (an utterance's WER 20 and more), which alone can
            # swamp a mean of 20: capped, such an utterance counts as wholly wrong, not 20 times.
            report[name][f"wer_{ear}_capped"] = float(np.mean(np.minimum(errors, 1.0)))
            # Sampling noise: two seeds a sentence (40 utterances) have read 0.35 and 0.27 on two
            # halves of one run, so each mean comes with its standard error over utterances.
            report[name][f"wer_{ear}_standard_error"] = float(np.std(errors, ddof=1) / np.sqrt(len(errors)))
            sentence_errors[name, ear] = np.minimum(errors, 1.0).reshape(args.seeds, len(sentences)).sum(axis=0)
    # Each pick's capped WER over N = 1's by every ear, with a 95 % interval from a paired bootstrap
    # over sentences (a sentence's seeds drawn together: they share its hard words).
    draws = np.random.default_rng(0).integers(0, len(sentences), size=(2000, len(sentences)))
    for ear in ears:
        n1 = sentence_errors["n1", ear]
        if n1.sum() == 0:  # N = 1 heard word for word: no ratio
            continue
        base = n1[draws].sum(axis=1)
        for name in picks.keys() - {"n1"}:
            ratios = sentence_errors[name, ear][draws].sum(axis=1)[base > 0] / base[base > 0]
            report[name][f"ratio_to_n1_{ear}_capped"] = float(sentence_errors[name, ear].sum() / n1.sum())
            report[name][f"ratio_to_n1_{ear}_capped_ci95"] = [float(np.percentile(ratios, q)) for q in (2.5, 97.5)]

    # Real-time factor of one plain request (N = 1, no verifier), the first sentences, both precisions,
    # on a warm engine as a serving replica is (the first request of a process pays ~1 s of setup).
    report["rtf_n1"] = {}
    for name, lm_args in (("float32", {}), ("int8", {"quantize": "int8"}),
                          ("int8_compiled", {"quantize": "int8", "compile_one_row": True})):
        plain = LlasaTTS(TransformersLM(f"{args.model}/lm", **lm_args), codec, {})
        asyncio.run(plain.synthesize(sentences[-1], SearchConfig(n=1, seed=99, **sampling), **voice))
        walls, seconds = 0.0, 0.0
        for index, text in enumerate(sentences[:5]):
            started = time.perf_counter()
            result = asyncio.run(plain.synthesize(text, SearchConfig(n=1, seed=100 + index, **sampling), **voice))
            walls += time.perf_counter() - started
            seconds += len(result.chosen.audio) / codec.sample_rate
        plain.lm.close()
        report["rtf_n1"][name] = walls / seconds

    speech = [piper_speech(t) for t in sentences]
    coded = codec.decode([codec.encode(a) for a in speech])
    for name, transcriber in (("judge_pocketsphinx", judge), ("whisper", whisper)):
        report[f"codec_{name}"] = {
            "wer_unquantised": float(np.mean([wer(t, h) for t, h in zip(sentences, transcriber.transcribe(speech, "en"))])),
            "wer_round_trip": float(np.mean([wer(t, h) for t, h in zip(sentences, transcriber.transcribe(coded, "en"))])),
        }
    if args.clone:
        report["cloning"] = cloning(engine, PROSE[: args.clone], sampling, voice)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
