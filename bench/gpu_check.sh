#!/usr/bin/env bash
# GPU check of the vLLM LM backend (not run in CI: it needs a CUDA GPU and `pip install -e '.[vllm]'`).
#
#   bash bench/gpu_check.sh            # from the repository root
#
# 1. builds a small Llasa-format checkpoint (random weights; head_dim 64, which vLLM's kernels take);
# 2. asserts that greedy vLLM and greedy transformers give the same codes for a few prompts;
# 3. runs best-of-8 and beam n=8 M=2 on the vLLM stage (the service's LM code path) and prints
#    tokens/s and the prefix-cache hit rate;
# 4. runs best-of-8 and beam through the service (serve run, gRPC client) with lm.backend: vllm.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$(mktemp -d /tmp/llasa-gpu-check.XXXX)
export LLASA_GPU_CHECK_DIR=$WORK

python - <<'EOF'
import asyncio, os, random, time
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from llasa_core.lm import TransformersLM
from llasa_core.lm_vllm import VLLMLM
from llasa_core.stages import GenerateRequest, SamplingParams
from llasa_core.tiny_checkpoints import build_llasa_tokenizer

path = Path(os.environ["LLASA_GPU_CHECK_DIR"]) / "llasa"
tokenizer = build_llasa_tokenizer()
torch.manual_seed(0)
end = tokenizer.convert_tokens_to_ids("<|SPEECH_GENERATION_END|>")
config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                     bos_token_id=tokenizer.bos_token_id, eos_token_id=end, pad_token_id=tokenizer.pad_token_id)
LlamaForCausalLM(config).save_pretrained(path)
tokenizer.save_pretrained(path)
texts = ["The quick brown fox.", "She sells sea shells by the sea shore.", "A journey of a thousand miles."]
greedy = SamplingParams(temperature=0.0)

hf = TransformersLM(str(path), device="cuda", dtype="float32")
expected = []
for i, text in enumerate(texts):
    prompt = tuple(hf.prompt_ids(text))
    expected.append(hf.generate(GenerateRequest(f"hf{i}", prompt, max_new_tokens=64, sampling=greedy)).continuations[0].codes)
hf.close()
del hf
torch.cuda.empty_cache()

lm = VLLMLM(str(path), dtype="float32", gpu_memory_utilization=0.5)


async def main():
    for i, text in enumerate(texts):
        prompt = tuple(lm.prompt_ids(text))
        got = (await lm.generate(GenerateRequest(f"v{i}", prompt, max_new_tokens=64, sampling=greedy))).continuations[0].codes
        assert got == expected[i], f"greedy codes differ for {text!r}:\n vllm {got[:16]}\n  hf  {expected[i][:16]}"
    print("greedy vLLM == greedy transformers on", len(texts), "prompts")

    async def best_of(i):
        prompt = tuple(lm.prompt_ids(texts[i % 3]))
        r = await lm.generate(GenerateRequest(f"b{i}", prompt, num_candidates=8, seed=i, max_new_tokens=200))
        lm.release(f"b{i}")
        return r.generated_tokens

    async def beam(i):
        prompt, picker, session = tuple(lm.prompt_ids(texts[i % 3])), random.Random(i), f"beam{i}"
        r = await lm.generate(GenerateRequest(session, prompt, num_candidates=8, seed=i, max_new_tokens=25,
                                              max_total_tokens=len(prompt) + 200))
        tokens = r.generated_tokens
        while live := [k for k, c in enumerate(r.continuations) if not c.finished]:
            keep = picker.sample(live, min(4, len(live)))
            r = await lm.generate(GenerateRequest(session, prompt, num_candidates=8, parents=tuple(k for k in keep for _ in (0, 1)),
                                                  seed=i, max_new_tokens=25, max_total_tokens=len(prompt) + 200))
            tokens += r.generated_tokens
        lm.release(session)
        return tokens

    for name, search in (("best-of-8", best_of), ("beam n=8 M=2", beam)):
        for concurrent in (1, 8):
            started = time.perf_counter()
            tokens = sum(await asyncio.gather(*(search(100 * concurrent + i) for i in range(concurrent))))
            print(f"{name:13s} {concurrent} concurrent: {tokens / (time.perf_counter() - started):9.0f} LM tok/s")
    try:
        from prometheus_client import REGISTRY
        values = {s.name: s.value for m in REGISTRY.collect() for s in m.samples if "prefix_cache" in s.name}
        hits = sum(v for k, v in values.items() if "hits" in k)
        queries = sum(v for k, v in values.items() if "queries" in k)
        print(f"prefix cache hit rate: {hits / queries:.1%} ({hits:.0f} of {queries:.0f} tokens)" if queries
              else f"prefix cache metrics not found: {sorted(values)}")
    except ImportError:
        print("prometheus_client missing: no prefix-cache hit rate")

asyncio.run(main())
EOF

# Through the service: the default config with the LM on vLLM (tiny checkpoint) and the embedded codec.
python - <<'EOF'
import os, yaml
cfg = yaml.safe_load(open("serve_config.yaml"))
lm = cfg["applications"][0]["args"]["lm"]
lm.update(backend="vllm", model=os.path.join(os.environ["LLASA_GPU_CHECK_DIR"], "llasa"), device="cuda",
          dtype="float32", gpu_memory_utilization=0.3)
for key in ("kv_budget_tokens", "max_waiting_sessions"):
    lm.pop(key, None)
for d in cfg["applications"][0]["deployments"]:
    if d["name"] == "LMSampler":
        d["ray_actor_options"] = {"num_cpus": 1, "num_gpus": 0.5}
yaml.safe_dump(cfg, open(os.path.join(os.environ["LLASA_GPU_CHECK_DIR"], "serve_config.yaml"), "w"))
EOF
serve run "$WORK/serve_config.yaml" > "$WORK/serve.log" 2>&1 &
SERVE=$!
trap 'kill $SERVE 2>/dev/null; ray stop --force >/dev/null 2>&1 || true' EXIT
for _ in $(seq 120); do llasa-tts describe >/dev/null 2>&1 && break; sleep 5; done
for strategy in "--strategy best_of_n -n 8" "--strategy beam -n 8 --beam-width 2"; do
  start=$(date +%s.%N)
  # shellcheck disable=SC2086
  llasa-tts synthesize "The quick brown fox jumps over the lazy dog." $strategy --seed 1 --quiet -o "$WORK/out.wav"
  echo "through the service, $strategy: $(echo "$(date +%s.%N) - $start" | bc) s"
done
