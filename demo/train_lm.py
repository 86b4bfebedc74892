"""Stage 4: train the demo LM, a small LlamaForCausalLM in the exact Llasa format.

Each example is the Llasa prompt for the sentence's phonemes (the checkpoint's declared front end),
then its speech codes as `<|s_N|>` tokens and `<|SPEECH_GENERATION_END|>`; the loss covers the
speech part only, as in Llasa's own training. A fifth of the input speech tokens are replaced by
random codes, so the model learns to recover from its own sampling mistakes.

Alignment prior (training only; the checkpoint stays a plain Llama): a decoder-only TTS model on
a few hours of speech takes many thousands of steps to discover that speech follows the text in
order, and until then it babbles. Head 0 of a few layers is pushed to put its attention, from each
speech position, on the text token that frame says, as found by forced alignment (demo.align);
guided attention (Tachibana et al. 2017) with the real alignment instead of a blurred diagonal,
so the head becomes a pointer into the text. A pointer is not yet a reading: with it alone the
held-out loss was only 0.09 nats lower with the right text than with another utterance's. So the
hidden states after `--phoneme-layer` layers must also name the phoneme each frame says (a
cross-entropy through the tied embeddings, no new weights); that gap then grew to 0.5 nats within
1,200 steps. Both losses are training-only; the checkpoint stays a plain Llama.

The tokenizer keeps each IPA symbol as one token (`IPA_SYMBOLS`) rather than two UTF-8 bytes, so
one text position is one phoneme. `--init-from` starts from an earlier demo checkpoint, copying
every weight and mapping embedding rows by token (a new token starts at the mean of its bytes).

Resumable: every `--checkpoint-every` seconds the model, optimiser and step go to
`<cache>/lm/state.pt`; a rerun continues from there. New speech shards are picked up at each
checkpoint. The checkpoint with the lowest held-out loss is saved in Llasa format to
`<cache>/lm/best`, ready for `demo.export`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from demo.sentences import is_held_out
from demo.speech import per_utterance
from llasa_core.demo_codec import DemoMelCodec, nearest
from llasa_core.prompt import (
    FRONTEND_FILE,
    TEXT_UNDERSTANDING_END,
    TEXT_UNDERSTANDING_START,
    LlasaVocab,
    build_prompt_ids,
)
from llasa_core.tiny_checkpoints import build_llasa_tokenizer

IGNORE = -100
# The symbols espeak-ng's en-us voice writes beyond ASCII (those in Latin-1, like æ and ð, are
# byte-level symbols of single bytes already, so they already are one token).
IPA_SYMBOLS = "æçðŋɐɑɒɔəɚɛɜɝɡɪɫɬɹɾʃʊʌʍʒʔʲˈˌːθᵻ\u0329"


def demo_tokenizer(num_speech_tokens: int):
    return build_llasa_tokenizer(num_speech_tokens, whole_tokens=list(IPA_SYMBOLS))


def shard_codes(shard_path: Path, codec: DemoMelCodec, codec_id: str) -> list[np.ndarray]:
    """Codes of each utterance in a speech shard, cached beside it per codebook."""
    cached = shard_path.parent.parent / "codes" / codec_id / shard_path.name
    if not cached.exists():
        shard = np.load(shard_path)
        codes = nearest(shard["mels"].astype(np.float32), codec.centroids).astype(np.int16)
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cached.with_suffix(".tmp.npz"), codes=codes, lengths=shard["lengths"])
        cached.with_suffix(".tmp.npz").rename(cached)
    data = np.load(cached)
    return per_utterance(data["codes"].astype(np.int64), data["lengths"])


class Dataset:
    """All synthesised shards as (input ids, labels) pairs, split into train and held-out."""

    def __init__(self, cache: Path, codec: DemoMelCodec, codec_id: str, tokenizer):
        self.cache, self.codec, self.codec_id, self.tokenizer = cache, codec, codec_id, tokenizer
        self.vocab = LlasaVocab.from_tokenizer(tokenizer)
        self.text_start_id, self.text_end_id = tokenizer.convert_tokens_to_ids([TEXT_UNDERSTANDING_START, TEXT_UNDERSTANDING_END])
        self.train: list[tuple[list[int], list[int]]] = []
        self.held_out: list[tuple[list[int], list[int]]] = []
        self.loaded: set[str] = set()
        self.speech_tokens = 0

    def refresh(self) -> None:
        for path in sorted((self.cache / "speech").glob("shard*[0-9].npz")):
            alignment_path = self.cache / "align" / path.name
            if path.name in self.loaded or not alignment_path.exists():
                continue
            shard = np.load(path)
            alignment = np.load(alignment_path)
            positions = per_utterance(alignment["positions"].astype(np.int64), alignment["lengths"])
            for text, phonemes, codes, said in zip(shard["texts"], shard["phonemes"],
                                                   shard_codes(path, self.codec, self.codec_id), positions):
                prompt = build_prompt_ids(self.tokenizer, self.vocab, str(phonemes))
                speech = self.vocab.codes_to_ids(codes.tolist()) + [self.vocab.speech_end_id]
                text_start, text_end = prompt.index(self.text_start_id) + 1, prompt.index(self.text_end_id)
                assert len(said) == len(codes) and said.max() < text_end - text_start, "stale alignment: rerun demo.align"
                # The query before frame k predicts it; the last one predicts the end, after the last token.
                pointer = text_start + np.append(said, text_end - text_start - 1)
                example = (prompt + speech, [IGNORE] * len(prompt) + speech, (len(prompt) - 1, text_start, text_end, pointer))
                (self.held_out if is_held_out(str(text)) else self.train).append(example)
                self.speech_tokens += len(speech)
            self.loaded.add(path.name)

    def batches(self, examples, tokens_per_batch: int, rng: random.Random, shuffle: bool = True):
        """Batches of similar length (little padding), in random order."""
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


def alignment_loss(attentions, spans, layers, sigma: float = 1.0) -> torch.Tensor:
    """1 - the attention mass head 0 of `layers` puts on the aligned text token (give or take one),
    from every query that predicts speech."""
    losses = []
    for row, (speech_start, text_start, text_end, pointer) in enumerate(spans):
        text = torch.arange(text_start, text_end)
        prior = torch.exp(-((torch.as_tensor(pointer)[:, None] - text[None]) ** 2) / (2 * sigma**2))
        queries = slice(speech_start, speech_start + len(pointer))
        for layer in layers:
            attention = attentions[layer][row, 0, queries, text_start:text_end].float()
            losses.append(1 - (attention * prior).sum(-1).mean())
    return torch.stack(losses).mean()


def phoneme_loss(hidden, embeddings, ids, spans) -> torch.Tensor:
    """Cross-entropy of the text token each speech frame says, read from the hidden states at the
    queries that predict the frames through the (tied) token embeddings: no new parameters."""
    queries, targets = [], []
    for row, (speech_start, _, _, pointer) in enumerate(spans):
        queries.append(hidden[row, speech_start:speech_start + len(pointer)])
        targets.append(ids[row, torch.as_tensor(pointer)])
    logits = torch.cat(queries).float() @ embeddings.float().T
    return torch.nn.functional.cross_entropy(logits, torch.cat(targets))


def corrupt(ids: torch.Tensor, labels: torch.Tensor, vocab: LlasaVocab, rate: float, generator) -> torch.Tensor:
    """Replace `rate` of the speech input tokens by random codes (labels stay clean)."""
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
        attention_dropout=args.attention_dropout,
    )
    return LlamaForCausalLM(config)


@torch.no_grad()
def held_out_loss(model, dataset: Dataset, tokens_per_batch: int, wrong_text: bool = False) -> float:
    """Nats per speech token on the held-out utterances; with `wrong_text`, each one is prompted
    with the next one's text, so the difference says how much the model listens to the text."""
    examples = dataset.held_out
    if wrong_text:
        examples = [(x[: sx + 1] + y[sy + 1:], [IGNORE] * (sx + 1) + y[sy + 1:], None)
                    for (x, _, (sx, *_)), (y, _, (sy, *_)) in zip(examples[1:] + examples[:1], examples)]
    model.eval()
    total, count = 0.0, 0
    for ids, labels, mask, _ in dataset.batches(examples, tokens_per_batch, random.Random(0), shuffle=False):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=IGNORE, reduction="sum")
        total += loss.item()
        count += int((labels[:, 1:] != IGNORE).sum())
    model.train()
    return total / max(count, 1)


def learning_rate(step: int, args) -> float:
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = min(1.0, (step - args.warmup) / max(1, args.max_steps - args.warmup))
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def init_from(model, tokenizer, checkpoint: str) -> None:
    """Copy an earlier checkpoint's weights; embedding rows follow their tokens into the new vocabulary."""
    from transformers import AutoTokenizer

    old_model = LlamaForCausalLM.from_pretrained(checkpoint)
    old_tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    old_embeddings = old_model.get_input_embeddings().weight
    state = {k: v for k, v in old_model.state_dict().items() if "embed_tokens" not in k and "lm_head" not in k}
    model.load_state_dict(state, strict=False)
    embeddings = model.get_input_embeddings().weight
    old_ids = old_tokenizer.get_vocab()
    for token, new_id in tokenizer.get_vocab().items():
        if token in old_ids:
            embeddings[new_id] = old_embeddings[old_ids[token]]
        else:  # a whole IPA symbol: the mean of the byte tokens it used to be
            byte_ids = old_tokenizer(token, add_special_tokens=False).input_ids
            embeddings[new_id] = old_embeddings[byte_ids].mean(0)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cache", default=".cache/demo")
    parser.add_argument("--out", default=None, help="checkpoints (default: <cache>/lm)")
    parser.add_argument("--codec", default=None, help="codec folder (default: <cache>/codec/current)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--attention-dropout", type=float, default=0.0)
    parser.add_argument("--input-noise", type=float, default=0.2)
    parser.add_argument("--alignment-weight", type=float, default=3.0, help="guided attention; 0 turns it off")
    parser.add_argument("--alignment-layers", default="1,2,3", help="layers whose head 0 is guided")
    parser.add_argument("--phoneme-weight", type=float, default=1.0,
                        help="weight of naming the phoneme each frame says from the hidden states after --phoneme-layer layers")
    parser.add_argument("--phoneme-layer", type=int, default=3)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--max-steps", type=int, default=6000)
    parser.add_argument("--tokens-per-batch", type=int, default=4000)
    parser.add_argument("--checkpoint-every", type=float, default=300, help="seconds")
    parser.add_argument("--threads", type=int, default=1, help="more threads stall when other jobs share the cores")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init-from", default=None, help="an earlier demo LM checkpoint to start from")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cache = Path(args.cache)
    codec_path = Path(args.codec or cache / "codec" / "current").resolve()
    codec = DemoMelCodec(str(codec_path))
    codec_id = hashlib.sha1(codec.centroids.tobytes()).hexdigest()[:12]  # the codes depend on the codebook only
    tokenizer = demo_tokenizer(codec.codebook_size)
    dataset = Dataset(cache, codec, codec_id, tokenizer)
    dataset.refresh()
    vocab = dataset.vocab
    out = Path(args.out or cache / "lm")
    out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(args.seed)
    model = build_model(tokenizer, vocab, args)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.05)
    step, best, seconds = 0, float("inf"), 0.0
    if (out / "state.pt").exists():
        state = torch.load(out / "state.pt", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, best, seconds = state["step"], state["best"], state["seconds"]
        print(f"resumed at step {step}, best held-out loss {best:.3f}", flush=True)
    elif args.init_from:
        init_from(model, tokenizer, args.init_from)
        print(f"started from {args.init_from}", flush=True)
    if not dataset.train:
        raise SystemExit(f"no aligned speech in {cache}: run demo.speech, demo.train_codec and demo.align first")
    print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, "
          f"{len(dataset.train)} train / {len(dataset.held_out)} held-out utterances, "
          f"{dataset.speech_tokens / 50 / 3600:.2f} h of speech", flush=True)

    rng = random.Random(args.seed + step)
    generator = torch.Generator().manual_seed(args.seed + step)
    align = args.alignment_weight > 0
    alignment_layers = [int(layer) for layer in args.alignment_layers.split(",")]
    model.set_attn_implementation("eager" if align else "sdpa")  # eager returns attention weights
    model.train()
    last_checkpoint, tokens_seen, window_start = time.time(), 0, time.time()
    while step < args.max_steps:
        for ids, labels, mask, spans in dataset.batches(dataset.train, args.tokens_per_batch, rng):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, args)
            inputs = corrupt(ids, labels, vocab, args.input_noise, generator)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                output = model(input_ids=inputs, attention_mask=mask, labels=labels, output_attentions=align,
                               output_hidden_states=args.phoneme_weight > 0)
            loss = output.loss
            if align:
                aligned = alignment_loss(output.attentions, spans, alignment_layers)
                loss = loss + args.alignment_weight * aligned
            named = torch.zeros(())
            if args.phoneme_weight > 0:
                named = phoneme_loss(output.hidden_states[args.phoneme_layer], model.get_input_embeddings().weight, ids, spans)
                loss = loss + args.phoneme_weight * named
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            tokens_seen += int(mask.sum())
            if step % 20 == 0:
                now = time.time()
                print(f"step {step} loss {loss.item():.3f} (alignment {aligned.item() if align else 0:.3f}, "
                      f"phoneme {named.item():.3f}) lr {learning_rate(step, args):.2e} "
                      f"{tokens_seen / (now - window_start):.0f} tok/s", flush=True)
                tokens_seen, window_start = 0, now
            if time.time() - last_checkpoint > args.checkpoint_every or step >= args.max_steps:
                seconds += time.time() - last_checkpoint
                held = held_out_loss(model, dataset, args.tokens_per_batch)
                text_worth = held_out_loss(model, dataset, args.tokens_per_batch, wrong_text=True) - held
                print(f"step {step}: held-out loss {held:.3f}, {text_worth:.3f} lower than with the wrong text, "
                      f"after {seconds / 60:.1f} min", flush=True)
                if held < best:
                    best = held
                    save_best(model, tokenizer, out / "best", {
                        "step": step, "held_out_loss": held, "text_worth_nats": text_worth, "training_minutes": seconds / 60,
                        "train_utterances": len(dataset.train), "speech_hours": dataset.speech_tokens / 50 / 3600,
                        "codec": codec_id, **{k: v for k, v in vars(args).items() if k not in ("cache", "codec", "out")}})
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                            "best": best, "seconds": seconds}, out / "state.tmp.pt")
                (out / "state.tmp.pt").rename(out / "state.pt")
                dataset.refresh()
                last_checkpoint = time.time()
                break  # new batches, with any new shards
            if step >= args.max_steps:
                break


if __name__ == "__main__":
    main()
