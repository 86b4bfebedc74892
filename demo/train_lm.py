"""Train the demo LM: a LlamaForCausalLM in the exact Llasa format, several voices, zero-shot cloning.

    python -m demo.train_lm [--data demo/data] [--out .cache/demo/lm-v2] [--device cpu|cuda]

Data: the code shards of demo.data (phonemes, voice, uint16 codes of the data's own codec). Each
example is Llasa's prompt for the utterance's phonemes, then its codes as `<|s_N|>` tokens and
`<|SPEECH_GENERATION_END|>`; the loss covers that speech only, as in Llasa's training. For
`--clone-share` of the examples the prompt is Llasa's zero-shot cloning prompt instead: another
utterance of the same voice goes first, its transcript before the text and its codes after
`<|SPEECH_GENERATION_START|>` (no loss on them), so the voice comes only from the reference, as
at inference (llasa_core.prompt). Without a reference the model speaks whichever voice it likes.
A fifth of the input speech tokens are replaced by random codes (recovering from its own
sampling mistakes).

Training-only losses (the checkpoint stays a plain Llama; the model card tells how they moved the
first demo model from babble to reading):
- pointer: head 0 of `--alignment-layers` puts its attention, from each query that predicts a
  target frame, on the text token that frame says (give or take one), per forced alignment
  (demo.align.ShardAligner, run here on each shard as it is loaded);
- phoneme naming: the hidden states after `--phoneme-layer` layers must name that token, a
  cross-entropy through the tied embeddings (no new weights).

The tokenizer keeps each IPA symbol one token (`IPA_SYMBOLS`), so one text position is one
phoneme. Resumable: every `--checkpoint-every` seconds the model, optimiser, step and data order
go to `<out>/state.pt` (atomically); a rerun continues there and picks up any new shards. The
lowest held-out loss so far is saved in Llasa format to `<out>/best`.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AttentionInterface, LlamaConfig, LlamaForCausalLM
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, eager_mask

from demo.align import ShardAligner
from demo.data import codec_id, per_utterance
from demo.sentences import is_held_out
from llasa_core.demo_codec import DemoFSQCodec
from llasa_core.prompt import FRONTEND_FILE, TEXT_UNDERSTANDING_END, TEXT_UNDERSTANDING_START, LlasaVocab, build_prompt_ids
from llasa_core.tiny_checkpoints import build_llasa_tokenizer

IGNORE = -100
# The symbols espeak-ng's en-us voice writes beyond Latin-1 (æ, ð and the like are one
# byte-level token already).
IPA_SYMBOLS = "æçðŋɐɑɒɔəɚɛɜɝɡɪɫɬɹɾʃʊʌʍʒʔʲˈˌːθᵻ\u0329"
REFERENCE_FRAMES = (75, 400)  # references of 1.5-8 s: long enough to carry the voice


def demo_tokenizer(num_speech_tokens: int):
    return build_llasa_tokenizer(num_speech_tokens, whole_tokens=list(IPA_SYMBOLS))


@dataclass
class Utterance:
    text: list[int]  # phoneme token ids
    codes: list[int]  # speech token ids
    said: np.ndarray  # per frame, the index into `text` it says
    voice: str


class Corpus:
    """Code shards -> utterances, split by a hash of the text (held-out voices never get here)."""

    def __init__(self, data: Path, cache: Path, tokenizer, codec: DemoFSQCodec):
        self.data, self.tokenizer, self.codec_id = data, tokenizer, codec_id(codec)
        self.vocab = LlasaVocab.from_tokenizer(tokenizer)
        # alignments of one codec's codes: a new codec aligns afresh
        self.aligner = ShardAligner(cache / "v2" / "align" / codec_id(codec), codec.code_mels, tokenizer)
        self.train: list[Utterance] = []
        self.held_out: list[Utterance] = []
        self.loaded: set[str] = set()
        self.frames = 0
        # The chat template around the text is the same for every prompt: [before] text [after].
        template = build_prompt_ids(tokenizer, self.vocab, "")
        start, end = tokenizer.convert_tokens_to_ids([TEXT_UNDERSTANDING_START, TEXT_UNDERSTANDING_END])
        self.before, self.after = template[: template.index(start) + 1], template[template.index(end):]
        self.space = tokenizer(" ", add_special_tokens=False).input_ids

    def refresh(self, log=print) -> None:
        paths = sorted((self.data / "codes").glob("shard*[0-9].npz"))
        self.aligner.update(paths, log)
        for path in paths:
            if path.name in self.loaded:
                continue
            shard, alignment = np.load(path), np.load(self.aligner.folder / path.name)
            if str(shard["codec"]) != self.codec_id:
                raise SystemExit(f"{path} was coded by codec {shard['codec']}, not {self.codec_id}: rerun demo.data")
            codes = per_utterance(shard["codes"].astype(np.int64), shard["lengths"])
            said = per_utterance(alignment["positions"].astype(np.int64), alignment["lengths"])
            for text, phonemes, voice, c, s in zip(shard["texts"], shard["phonemes"], shard["voices"], codes, said):
                ids = self.tokenizer(str(phonemes), add_special_tokens=False).input_ids
                utterance = Utterance(ids, self.vocab.codes_to_ids(c.tolist()), s, str(voice))
                (self.held_out if is_held_out(str(text)) else self.train).append(utterance)
                self.frames += len(c)
            self.loaded.add(path.name)
        self.references: dict[str, list[Utterance]] = {}
        for u in self.train:
            if REFERENCE_FRAMES[0] <= len(u.codes) <= REFERENCE_FRAMES[1]:
                self.references.setdefault(u.voice, []).append(u)

    def example(self, target: Utterance, reference: Utterance | None):
        """(input ids, labels, spans for the training-only losses)."""
        text = reference.text + self.space + target.text if reference else target.text
        prompt = self.before + text + self.after + (reference.codes if reference else [])
        text_start = len(self.before)
        target_start, text_end = text_start + len(text) - len(target.text), text_start + len(text)
        # The query before frame k predicts it; the last one predicts the end, after the last token.
        pointer = target_start + np.append(target.said, len(target.text) - 1)
        speech = target.codes + [self.vocab.speech_end_id]
        return prompt + speech, [IGNORE] * len(prompt) + speech, (len(prompt) - 1, text_start, text_end, pointer)

    def pick_reference(self, target: Utterance, rng: random.Random) -> Utterance | None:
        choices = self.references.get(target.voice, [])
        reference = rng.choice(choices) if choices else None
        return reference if reference is not target else None

    def batches(self, utterances, tokens_per_batch: int, clone_share: float, rng: random.Random, shuffle: bool = True):
        """Batches of similar length (little padding); a `clone_share` of examples get a reference."""
        examples = [self.example(u, self.pick_reference(u, rng) if rng.random() < clone_share else None) for u in utterances]
        order = sorted(range(len(examples)), key=lambda i: len(examples[i][0]) + rng.random() * 20 * shuffle)
        batches, current, longest = [], [], 0
        for i in order:
            longest_if_added = max(longest, len(examples[i][0]))
            if current and longest_if_added * (len(current) + 1) > tokens_per_batch:
                batches.append(current)
                current, longest_if_added = [], len(examples[i][0])
            current.append(i)
            longest = longest_if_added
        if current:
            batches.append(current)
        if shuffle:
            rng.shuffle(batches)
        for batch in batches:
            yield collate([examples[i] for i in batch], self.tokenizer.pad_token_id)


def collate(examples, pad_id: int):
    length = max(len(ids) for ids, _, _ in examples)
    ids = torch.full((len(examples), length), pad_id)
    labels = torch.full((len(examples), length), IGNORE)
    mask = torch.zeros((len(examples), length), dtype=torch.long)
    for row, (x, y, _) in enumerate(examples):
        ids[row, : len(x)] = torch.tensor(x)
        labels[row, : len(y)] = torch.tensor(y)
        mask[row, : len(x)] = 1
    return ids, labels, mask, [spans for _, _, spans in examples]


POINTER_ATTENTION = "llasa_pointer"


def use_pointer_attention(model: LlamaForCausalLM, layers: list[int]) -> None:
    """Every layer attends by sdpa; the guided `layers` also return head 0's attention
    probabilities, all that alignment_loss reads, so `output.attentions` holds one (batch, 1,
    query, key) tensor per guided layer, in order. Eager attention, which returns every head of
    every layer, made a 6,000-token step 1.9x (500-token rows) to 3.0x (250) slower (2 cores, bf16)."""
    guided = set(layers)

    def attention(module, query, key, value, attention_mask, scaling=None, output_attentions=False, **kwargs):
        # output_attentions is answered here: passed on, sdpa would warn that it cannot.
        output, _ = sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, **kwargs)
        if module.layer_idx not in guided:
            return output, None
        scores = query[:, :1] @ key[:, :1].transpose(2, 3) * scaling + attention_mask[..., : key.shape[-2]]
        return output, torch.softmax(scores, dim=-1, dtype=torch.float32)

    AttentionInterface.register(POINTER_ATTENTION, attention)
    AttentionMaskInterface.register(POINTER_ATTENTION, eager_mask)  # an additive mask, for the head 0 scores too
    model.set_attn_implementation(POINTER_ATTENTION)


def alignment_loss(attentions, spans, sigma: float = 1.0) -> torch.Tensor:
    """1 - the attention mass head 0 of each guided layer (`attentions`, use_pointer_attention's)
    puts on the aligned text token (give or take one), from every query that predicts target speech."""
    losses = []
    for row, (speech_start, text_start, text_end, pointer) in enumerate(spans):
        text = torch.arange(text_start, text_end, device=attentions[0].device)
        prior = torch.exp(-((torch.as_tensor(pointer, device=text.device)[:, None] - text[None]) ** 2) / (2 * sigma**2))
        queries = slice(speech_start, speech_start + len(pointer))
        for layer_attention in attentions:
            attention = layer_attention[row, 0, queries, text_start:text_end]
            losses.append(1 - (attention * prior).sum(-1).mean())
    return torch.stack(losses).mean()


def phoneme_loss(hidden, embeddings, ids, spans) -> torch.Tensor:
    """Cross-entropy of the text token each target frame says, read from the hidden states at the
    queries that predict the frames through the (tied) token embeddings: no new parameters."""
    queries, targets = [], []
    for row, (speech_start, _, _, pointer) in enumerate(spans):
        queries.append(hidden[row, speech_start:speech_start + len(pointer)])
        targets.append(ids[row, torch.as_tensor(pointer, device=ids.device)])
    logits = torch.cat(queries).float() @ embeddings.float().T
    return torch.nn.functional.cross_entropy(logits, torch.cat(targets))


def corrupt(ids: torch.Tensor, labels: torch.Tensor, vocab: LlasaVocab, rate: float, generator) -> torch.Tensor:
    """Replace `rate` of the target speech input tokens by random codes (labels stay clean)."""
    speech = (labels != IGNORE) & (ids >= vocab.first_speech_id) & (ids < vocab.first_speech_id + vocab.num_speech_tokens)
    flip = speech & (torch.rand(ids.shape, generator=generator) < rate)
    noise = vocab.first_speech_id + torch.randint(vocab.num_speech_tokens, ids.shape, generator=generator)
    return torch.where(flip, noise, ids)


def build_model(tokenizer, vocab: LlasaVocab, args) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=args.hidden, intermediate_size=args.hidden * 3,
        num_hidden_layers=args.layers, num_attention_heads=args.hidden // 64,
        num_key_value_heads=args.hidden // 64, max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=vocab.speech_end_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config)


@torch.no_grad()
def held_out_loss(model, corpus: Corpus, args, clone: bool = False, wrong_text: bool = False) -> float:
    """Nats per speech token on the held-out utterances, plain or with a reference of the same
    voice; with `wrong_text`, each is prompted with the next one's text, so the difference says
    how much the model listens to the text."""
    targets = corpus.held_out[: args.held_out]
    rng = random.Random(0)
    examples = [corpus.example(u, corpus.pick_reference(u, rng) if clone else None) for u in targets]
    if wrong_text:
        examples = [(x[: sx + 1] + y[sy + 1:], [IGNORE] * (sx + 1) + y[sy + 1:], None)
                    for (x, _, (sx, *_)), (y, _, (sy, *_)) in zip(examples[1:] + examples[:1], examples)]
    model.eval()
    total, count = 0.0, 0
    order = sorted(range(len(examples)), key=lambda i: len(examples[i][0]))
    for start in range(0, len(order), 16):
        ids, labels, mask, _ = collate([examples[i] for i in order[start:start + 16]], corpus.tokenizer.pad_token_id)
        ids, labels, mask = ids.to(args.device), labels.to(args.device), mask.to(args.device)
        with torch.autocast(args.device, dtype=torch.bfloat16):
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
        total += torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                                   ignore_index=IGNORE, reduction="sum").item()
        count += int((labels[:, 1:] != IGNORE).sum())
    model.train()
    return total / max(count, 1)


def learning_rate(step: int, args) -> float:
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = min(1.0, (step - args.warmup) / max(1, args.max_steps - args.warmup))
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def save_best(model, tokenizer, folder: Path, info: dict) -> None:
    tmp = folder.with_name(folder.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / FRONTEND_FILE).write_text(json.dumps({"name": "espeak-phonemes", "voice": "en-us"}) + "\n")
    (tmp / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    tmp.rename(folder)


def load_weights(path: Path, device: str) -> dict:
    """A state.pt, or a saved model folder read as one: its weights, step and codec (training.json)."""
    if not path.is_dir():
        return torch.load(path, weights_only=False, map_location=device)
    from safetensors.torch import load_file

    info = json.loads((path / "training.json").read_text())
    weights = load_file(path / "model.safetensors", device=device)
    weights.setdefault("lm_head.weight", weights["model.embed_tokens.weight"])  # tied: saved once
    return {"model": weights, "step": info["step"], "codec": info["codec"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="demo/data", help="demo.data's output: codec/ and codes/")
    parser.add_argument("--cache", default=".cache/demo", help="alignments")
    parser.add_argument("--out", default=".cache/demo/lm-v2", help="state.pt, best/, log")
    # 17.0M parameters: 68 MB in float32, so with the codec the model stays under 80 MB (6x512,
    # 22.7M, trains 25 % more tokens/s on 2 shared cores but is 91 MB).
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=384, help="a multiple of 64 (heads of 64)")
    parser.add_argument("--clone-share", type=float, default=0.5, help="examples prompted with a reference of the same voice")
    parser.add_argument("--input-noise", type=float, default=0.2)
    parser.add_argument("--alignment-weight", type=float, default=3.0, help="guided attention; 0 turns it off")
    parser.add_argument("--alignment-layers", default="1,2,3", help="layers whose head 0 is guided")
    parser.add_argument("--phoneme-weight", type=float, default=1.0)
    parser.add_argument("--phoneme-layer", type=int, default=4, help="hidden states after this many layers name the phoneme")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=300)
    # About 4.5 epochs: an epoch of the 21.7 h is ~1300 batches of 6000 tokens, 1.6-2.2 s each on 2 cores.
    parser.add_argument("--max-steps", type=int, default=5_800)
    parser.add_argument("--init-from", help="a state.pt or a saved model folder (best/, models/llasa-demo/lm) whose "
                                            "weights start this run (with its own --out, optimizer and schedule): to "
                                            "train on after a schedule has ended")
    parser.add_argument("--tokens-per-batch", type=int, default=6000)
    parser.add_argument("--checkpoint-every", type=float, default=300, help="seconds between saves of state.pt")
    parser.add_argument("--eval-every", type=float, default=1800,
                        help="seconds between held-out evaluations (and saves of best/); 3 passes over --held-out")
    parser.add_argument("--held-out", type=int, default=128, help="held-out utterances evaluated (the first ones)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    codec = DemoFSQCodec(str(Path(args.data) / "codec"))
    tokenizer = demo_tokenizer(codec.codebook_size)
    corpus = Corpus(Path(args.data), Path(args.cache), tokenizer, codec)
    corpus.refresh()
    if not corpus.train:
        raise SystemExit(f"no code shards in {args.data}/codes: run python -m demo.data first")
    vocab, out = corpus.vocab, Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(args.seed)
    model = build_model(tokenizer, vocab, args).to(args.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.05)
    step, best, seconds, last_eval = 0, float("inf"), 0.0, 0.0
    resuming = (out / "state.pt").exists()
    start_from = out / "state.pt" if resuming else args.init_from
    if start_from:
        state = load_weights(Path(start_from), args.device)
        if state.get("codec") != corpus.codec_id:
            raise SystemExit(f"{start_from} learnt the codes of codec {state.get('codec')}, the data is coded by "
                             f"{corpus.codec_id}" + (": move it away to train afresh" if resuming else ""))
        model.load_state_dict(state["model"])
        if resuming:
            optimizer.load_state_dict(state["optimizer"])
            step, best, seconds, last_eval = state["step"], state["best"], state["seconds"], state["last_eval"]
            print(f"resumed at step {step}, best held-out loss {best:.3f}", flush=True)
        else:
            print(f"initialised from {args.init_from} (its step {state['step']})", flush=True)
    print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, {len(corpus.train)} train / "
          f"{len(corpus.held_out)} held-out utterances, {corpus.frames / 50 / 3600:.2f} h of speech, "
          f"voices {sorted(corpus.references)}", flush=True)

    rng = random.Random(args.seed + step)  # a resumed run draws new batches, not the same ones again
    generator = torch.Generator().manual_seed(args.seed + step)
    align = args.alignment_weight > 0
    if align:
        use_pointer_attention(model, [int(layer) for layer in args.alignment_layers.split(",")])
    else:
        model.set_attn_implementation("sdpa")
    model.train()
    last_checkpoint, tokens_seen, window_start = time.time(), 0, time.time()
    while step < args.max_steps:
        for ids, labels, mask, spans in corpus.batches(corpus.train, args.tokens_per_batch, args.clone_share, rng):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, args)
            inputs = corrupt(ids, labels, vocab, args.input_noise, generator).to(args.device)
            ids, labels, mask = ids.to(args.device), labels.to(args.device), mask.to(args.device)
            with torch.autocast(args.device, dtype=torch.bfloat16):
                output = model(input_ids=inputs, attention_mask=mask, labels=labels, output_attentions=align,
                               output_hidden_states=args.phoneme_weight > 0)
            loss = output.loss
            aligned = alignment_loss(output.attentions, spans) if align else torch.zeros(())
            named = torch.zeros(())
            if args.phoneme_weight > 0:
                named = phoneme_loss(output.hidden_states[args.phoneme_layer], model.get_input_embeddings().weight, ids, spans)
            total = loss + args.alignment_weight * aligned + args.phoneme_weight * named
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            tokens_seen += int(mask.sum())
            if step % 20 == 0:
                now = time.time()
                print(f"step {step} speech loss {loss.item():.3f} alignment {aligned.item():.3f} phoneme {named.item():.3f} "
                      f"lr {learning_rate(step, args):.2e} {tokens_seen / (now - window_start):.0f} tok/s "
                      f"{(now - window_start) / 20:.2f} s/step", flush=True)
                tokens_seen, window_start = 0, now
            if time.time() - last_checkpoint > args.checkpoint_every or step >= args.max_steps:
                seconds += time.time() - last_checkpoint
                if seconds - last_eval >= args.eval_every or step >= args.max_steps:
                    last_eval = seconds
                    held = held_out_loss(model, corpus, args)
                    cloned = held_out_loss(model, corpus, args, clone=True)
                    text_worth = held_out_loss(model, corpus, args, wrong_text=True) - held
                    print(f"step {step}: held-out loss {held:.3f} ({cloned:.3f} with a reference of the voice), "
                          f"{text_worth:.3f} lower than with the wrong text, after {seconds / 60:.1f} min", flush=True)
                else:
                    held = best
                if held < best:
                    best = held
                    save_best(model, tokenizer, out / "best", {
                        "step": step, "held_out_loss": held, "held_out_loss_cloned": cloned, "text_worth_nats": text_worth,
                        "training_minutes": seconds / 60, "train_utterances": len(corpus.train),
                        "speech_hours": corpus.frames / 50 / 3600, "codec": corpus.codec_id,
                        **{k: v for k, v in vars(args).items() if k not in ("data", "cache", "out")}})
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                            "best": best, "seconds": seconds, "last_eval": last_eval, "codec": corpus.codec_id},
                           out / "state.tmp.pt")
                (out / "state.tmp.pt").rename(out / "state.pt")
                corpus.refresh()
                last_checkpoint = time.time()
                break  # new batches, with any new shards
            if step >= args.max_steps:
                break


if __name__ == "__main__":
    main()
