import time

import pytest
import torch
from transformers import DynamicCache

from llasa_core.lm import SessionError, TransformersLM
from llasa_core.stages import GenerateRequest, SamplingParams


@pytest.fixture(scope="module")
def prompt(tiny_lm):
    return tuple(tiny_lm.prompt_ids("The quick brown fox."))


def request(prompt, session="s", **kwargs):
    kwargs.setdefault("max_new_tokens", 6)
    kwargs.setdefault("seed", 7)
    return GenerateRequest(session_id=session, prompt_ids=prompt, **kwargs)


def codes_of(result):
    return [c.codes for c in result.continuations]


def test_seed_makes_sampling_reproducible(tiny_lm, prompt):
    first = tiny_lm.generate(request(prompt, num_candidates=4))
    again = tiny_lm.generate(request(prompt, num_candidates=4))
    other = tiny_lm.generate(request(prompt, num_candidates=4, seed=8))
    assert codes_of(first) == codes_of(again)
    assert codes_of(first) != codes_of(other)
    assert len(set(codes_of(first))) == 4  # the N rows of one batch are independent samples


def test_prompt_is_prefilled_once_and_steps_continue_from_the_cache(tiny_lm, prompt):
    start = tiny_lm.generate(request(prompt, session="acct", num_candidates=3))
    assert start.prefill_tokens == len(prompt)
    assert start.generated_tokens == 3 * 6
    step = tiny_lm.generate(request(prompt, session="acct", parents=(2, 2, 0, 1), max_new_tokens=4))
    assert step.prefill_tokens == 0
    assert step.generated_tokens == 4 * 4
    assert len(step.continuations) == 4
    tiny_lm.release("acct")


def test_kept_cache_equals_recomputing_every_prefix(tiny_lm, prompt):
    """After forking and reordering, each row's cache is what a fresh prefill of its tokens gives."""
    tiny_lm.generate(request(prompt, session="kv", num_candidates=3))
    tiny_lm.generate(request(prompt, session="kv", parents=(1, 1, 2), max_new_tokens=5))
    session, pool = tiny_lm._sessions["kv"], tiny_lm.scheduler.pool
    slots = [row.slot for row in session.rows]
    length = session.rows[0].positions  # the pending token of each row is sampled but not yet run
    assert all(row.positions == length for row in session.rows)
    computed = pool.tokens[slots, :length]
    fresh = DynamicCache()
    with torch.inference_mode():
        tiny_lm.model(input_ids=computed, past_key_values=fresh)
    for layer, layer_fresh in enumerate(fresh.layers):
        torch.testing.assert_close(pool.keys[layer][slots, :, :length], layer_fresh.keys, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(pool.values[layer][slots, :, :length], layer_fresh.values, atol=1e-5, rtol=1e-4)
    # rows 0 and 1 were forked from the same parent: same history, then their own samples
    tokens = pool.tokens[slots, : length + 1]
    assert torch.equal(tokens[0, :-5], tokens[1, :-5])
    tiny_lm.release("kv")


def test_chunked_greedy_equals_one_shot_greedy(tiny_lm, prompt):
    greedy = SamplingParams(temperature=0.0)
    one_shot = tiny_lm.generate(request(prompt, session="g1", max_new_tokens=12, sampling=greedy))
    tiny_lm.generate(request(prompt, session="g2", max_new_tokens=5, sampling=greedy))
    second = tiny_lm.generate(request(prompt, session="g2", parents=(0,), max_new_tokens=7, sampling=greedy))
    first_codes = tiny_lm.generate(request(prompt, session="g3", max_new_tokens=5, sampling=greedy))
    assert first_codes.continuations[0].codes + second.continuations[0].codes == one_shot.continuations[0].codes


def favour(lm: TransformersLM, token_id: int) -> None:
    """Give the LM head a bias that makes `token_id` by far the likeliest next token."""
    head = lm.model.lm_head
    biased = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    with torch.no_grad():
        biased.weight.copy_(head.weight)
        biased.bias.zero_()
        biased.bias[token_id] = 1e4
    lm.model.lm_head = biased


def test_only_speech_tokens_are_sampled_even_when_text_is_likelier(tiny_llasa_path, prompt):
    lm = TransformersLM(str(tiny_llasa_path))
    text_token = lm.tokenizer.convert_tokens_to_ids("<|eot_id|>")
    favour(lm, text_token)
    logits = lm.model(input_ids=torch.tensor([prompt])).logits[0, -1]
    assert logits.argmax().item() == text_token
    result = lm.generate(request(prompt, num_candidates=4, max_new_tokens=20))
    for continuation in result.continuations:
        assert all(0 <= code < lm.vocab.num_speech_tokens for code in continuation.codes)


def test_end_token_finishes_a_candidate(tiny_llasa_path, prompt):
    lm = TransformersLM(str(tiny_llasa_path))
    favour(lm, lm.vocab.speech_end_id)
    result = lm.generate(request(prompt, num_candidates=2, max_new_tokens=10))
    assert all(c.finished and not c.truncated and c.codes == () for c in result.continuations)
    assert result.generated_tokens == 2
    with pytest.raises(SessionError, match="already finished"):
        lm.generate(request(prompt, parents=(0,)))


def test_length_cap_truncates(tiny_lm, prompt):
    result = tiny_lm.generate(request(prompt, max_new_tokens=None, max_total_tokens=len(prompt) + 9))
    assert result.continuations[0].truncated and len(result.continuations[0].codes) == 9


def test_bad_session_calls_say_what_to_fix(tiny_lm, prompt):
    with pytest.raises(SessionError, match="unknown or expired session"):
        tiny_lm.generate(request(prompt, session="never-started", parents=(0,)))
    tiny_lm.generate(request(prompt, session="bad", num_candidates=2))
    with pytest.raises(SessionError, match="parent 5 is not a row"):
        tiny_lm.generate(request(prompt, session="bad", parents=(5,)))
    with pytest.raises(SessionError, match="max_total_tokens"):
        tiny_lm.generate(request(prompt, session="long", max_total_tokens=len(prompt)))


def test_a_start_released_before_it_registers_leaves_no_session(tiny_lm, prompt):
    """A search cancelled while its first LM call is still prefilling (or still queued) releases its
    session before the worker thread registers it: the start must not bring it back to life."""
    live = tiny_lm.live_sessions
    tiny_lm.release("cancelled-early")
    with pytest.raises(SessionError, match="released before it started"):
        tiny_lm.generate(request(prompt, session="cancelled-early"))
    assert tiny_lm.live_sessions == live


def test_a_session_left_idle_is_expired(tiny_lm, prompt, monkeypatch):
    """A session whose release never comes (it went to another replica after the replica set
    changed) is dropped once unused for session_idle_seconds; a session in use is kept."""
    monkeypatch.setattr(tiny_lm, "session_idle_seconds", 0.5)
    expired = tiny_lm.sessions_expired
    left_by_other_tests = len(tiny_lm._sessions)
    tiny_lm.generate(request(prompt, session="forgotten"))
    tiny_lm.generate(request(prompt, session="busy"))
    time.sleep(0.3)
    tiny_lm.generate(request(prompt, session="busy", parents=(0,)))
    time.sleep(0.3)
    tiny_lm.generate(request(prompt, session="other"))  # any call expires the idle ones
    assert "forgotten" not in tiny_lm._sessions and "busy" in tiny_lm._sessions
    assert tiny_lm.sessions_expired == expired + left_by_other_tests + 1
    with pytest.raises(SessionError, match="unknown or expired session"):
        tiny_lm.generate(request(prompt, session="forgotten", parents=(0,)))
    for session in ("busy", "other"):
        tiny_lm.release(session)


def test_int8_is_refused_where_its_kernels_do_not_run(tiny_llasa_path):
    with pytest.raises(ValueError, match="CPU"):
        TransformersLM(str(tiny_llasa_path), dtype="bfloat16", quantize="int8")
    with pytest.raises(ValueError, match="int8"):
        TransformersLM(str(tiny_llasa_path), quantize="int4")


def test_a_compiled_one_row_step_samples_what_the_eager_step_samples(tiny_llasa_path, tiny_lm, prompt):
    """compile_one_row compiles at construction; then a lone row's steps run the compiled program and
    sample what eager steps sample, and requests that grow the KV pool (longer, more rows) reuse
    that program: its sizes are symbolic, so nothing compiles again."""
    from torch._dynamo.utils import counters

    before = counters["stats"]["unique_graphs"]
    compiled = TransformersLM(str(tiny_llasa_path), compile_one_row=True)
    try:
        after_warm_up = counters["stats"]["unique_graphs"]
        assert after_warm_up > before
        for seed, length in ((1, 40), (2, 300)):  # the second outgrows the pool's first 256 positions
            ask = request(prompt, session=f"compiled-{seed}", seed=seed, max_new_tokens=length,
                          max_total_tokens=len(prompt) + length + 1)
            assert codes_of(compiled.generate(ask)) == codes_of(tiny_lm.generate(ask))
            compiled.release(ask.session_id)
            tiny_lm.release(ask.session_id)
        many = request(prompt, session="compiled-many", num_candidates=20)  # a batched step, then more slots
        assert codes_of(compiled.generate(many)) == codes_of(tiny_lm.generate(many))
        assert compiled.scheduler.pool.slots > 8
        assert counters["stats"]["unique_graphs"] == after_warm_up
    finally:
        compiled.close()
