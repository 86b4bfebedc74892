"""The LM scheduler: concurrent calls share forward passes, seeded results do not depend on the
batch, KV budget admission, and cancels that free only the cancelled call's rows."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import torch

from llasa_core.engine import LocalLM
from llasa_core.lm import KVBudgetExhausted, SessionError, TransformersLM
from llasa_core.stages import GenerateRequest, SamplingParams


@pytest.fixture(scope="module")
def lm(tiny_llasa_path):
    model = TransformersLM(str(tiny_llasa_path))
    yield model
    model.close()


@pytest.fixture(scope="module")
def prompts(lm):
    return tuple(lm.prompt_ids("The quick brown fox.")), tuple(lm.prompt_ids("A much longer second sentence, here."))


def request(prompt, session, **kwargs):
    kwargs.setdefault("seed", 7)
    return GenerateRequest(session_id=session, prompt_ids=prompt, **kwargs)


def codes(result):
    return [c.codes for c in result.continuations]


def wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


def test_two_concurrent_calls_share_forward_passes(lm, prompts):
    before = lm.stats()
    one = lm.submit(request(prompts[0], "share-a", num_candidates=2, max_new_tokens=150))
    two = lm.submit(request(prompts[1], "share-b", num_candidates=3, max_new_tokens=150))
    assert [len(r.continuations) for r in (one.result(), two.result())] == [2, 3]
    after = lm.stats()
    passes = after["forward_passes"] - before["forward_passes"]
    rows = after["forward_rows"] - before["forward_rows"]
    assert rows == 2 * 149 + 3 * 149  # every sampled token but the first (from the prefill) ran once
    assert passes < 1.2 * 149  # alone, the two calls would take 2 x 149 passes
    assert rows / passes > 4
    for session in ("share-a", "share-b"):
        lm.release(session)


def test_a_seeded_search_gives_the_same_codes_alone_and_batched(lm, prompts):
    def search(session):
        start = lm.submit(request(prompts[0], session, num_candidates=3, max_new_tokens=30)).result()
        step = lm.submit(request(prompts[0], session, parents=(0, 0, 2), max_new_tokens=20)).result()
        lm.release(session)
        return codes(start), codes(step)

    alone = search("alone")
    other = lm.submit(request(prompts[1], "other", num_candidates=4, max_new_tokens=200, seed=11))
    before = lm.stats()
    batched = search("batched")
    during = lm.stats()
    assert not other.done()  # the other search ran through both calls
    rows_per_pass = (during["forward_rows"] - before["forward_rows"]) / (during["forward_passes"] - before["forward_passes"])
    assert rows_per_pass > 3 + 4 - 1  # the search's rows were batched with the other's
    assert batched == alone
    other.result()
    lm.release("other")


def test_cancelling_a_call_frees_its_rows_only(lm, prompts):
    expected = codes(lm.generate(request(prompts[1], "kept-alone", num_candidates=2, max_new_tokens=200)))
    lm.release("kept-alone")
    cancelled = lm.submit(request(prompts[0], "cancelled", num_candidates=3, max_new_tokens=400))
    kept = lm.submit(request(prompts[1], "kept", num_candidates=2, max_new_tokens=200))
    passes = lm.stats()["forward_passes"]
    wait_for(lambda: lm.stats()["forward_passes"] > passes + 20)
    lm.release("cancelled")
    with pytest.raises(SessionError, match="released while it was generating"):
        cancelled.result()
    assert codes(kept.result()) == expected  # the other call ran on, undisturbed
    assert "kept" in lm._sessions and "cancelled" not in lm._sessions
    scheduler = lm.scheduler
    wait_for(lambda: not scheduler._active)
    held = {id(row) for row in scheduler._owner if row is not None}
    assert held == {id(row) for row in lm._sessions["kept"].rows}  # the cancelled call's slots are free, the other's kept
    lm.release("kept")


def test_the_model_never_runs_two_calls_at_once_after_a_cancel(lm, prompts):
    """A cancelled caller no longer holds anything the model needs: the scheduler thread alone runs it."""
    running, overlaps, threads = [0], [0], set()
    model = lm.model.base_model  # the scheduler runs the decoder, then only the speech rows of the head
    forward = model.forward

    def watched(*args, **kwargs):
        running[0] += 1
        overlaps[0] = max(overlaps[0], running[0])
        threads.add(threading.get_ident())
        try:
            return forward(*args, **kwargs)
        finally:
            running[0] -= 1

    async def scenario():
        local = LocalLM(lm)
        first = asyncio.create_task(local.generate(request(prompts[0], "cancel-me", num_candidates=4, max_new_tokens=300)))
        await asyncio.sleep(0.05)
        first.cancel()
        await local.release("cancel-me")  # what LMSampler does when its caller goes away
        second = await local.generate(request(prompts[1], "after-cancel", num_candidates=2, max_new_tokens=50))
        await local.release("after-cancel")
        return first, second

    model.forward = watched
    try:
        first, second = asyncio.run(scenario())
    finally:
        del model.forward
    assert first.cancelled() and len(second.continuations) == 2
    assert overlaps[0] == 1 and threads == {lm.scheduler._thread.ident}


def test_admission_refuses_beyond_the_budget_and_evicts_nothing(tiny_llasa_path, prompts):
    cap = len(prompts[0]) + 40
    small = TransformersLM(str(tiny_llasa_path), kv_budget_tokens=2 * 2 * cap, max_waiting_sessions=1)
    try:
        step = dict(num_candidates=2, max_new_tokens=5, max_total_tokens=cap)
        for session in ("first", "second"):
            small.generate(request(prompts[0], session, **step))
        waiting = small.submit(request(prompts[0], "third", **step))
        with pytest.raises(KVBudgetExhausted, match="KV budget is full"):
            small.generate(request(prompts[0], "fourth", **step))
        with pytest.raises(KVBudgetExhausted, match="over this LM replica's whole budget"):
            small.generate(request(prompts[0], "huge", num_candidates=5, max_total_tokens=cap))
        assert not waiting.done() and small.stats()["sessions_waiting"] == 1
        for session in ("first", "second"):  # the live sessions were not evicted and go on
            small.generate(request(prompts[0], session, parents=(1,), max_new_tokens=5, max_total_tokens=cap))
        small.release("first")
        assert len(waiting.result(timeout=30).continuations) == 2  # admitted once budget freed
        assert set(small._sessions) == {"second", "third"}
        assert small.stats()["sessions_refused"] == 2
    finally:
        small.close()


def test_checking_for_end_tokens_every_few_steps_gives_the_same_result(lm, prompts):
    """On an accelerator the host reads sampled tokens back only every few steps; rows that ended
    in between are cut at their end token, so results and token accounts are unchanged."""
    head = lm.model.lm_head
    biased = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    with torch.no_grad():
        biased.weight.copy_(head.weight)
        biased.bias.zero_()
        biased.bias[lm.vocab.speech_end_id] = 6.0  # the end token comes after a few dozen tokens
    lm.model.lm_head = biased
    results = []
    try:
        for every in (1, 6):
            lm.scheduler.stop_check_every = every
            result = lm.generate(request(prompts[0], f"every-{every}", num_candidates=6, max_new_tokens=60))
            lm.release(f"every-{every}")
            results.append(([(c.codes, c.finished) for c in result.continuations], result.generated_tokens))
    finally:
        lm.scheduler.stop_check_every = 1
        lm.model.lm_head = head
    assert results[0] == results[1]
    finished = [done for _, done in results[0][0]]
    assert any(finished) and not all(finished)  # some rows ended mid-chunk, some ran to its end


def test_the_sampler_draws_from_the_softmax_of_the_logits(lm):
    """The two-level inverse-CDF sampler (block, then column) against the exact probabilities."""
    from concurrent.futures import Future

    from llasa_core.lm_scheduler import _Call, _Session

    scheduler, vocab = lm.scheduler, lm.vocab
    columns = [5, 300, 40_000, vocab.num_speech_tokens]  # three speech codes in other blocks, and the end
    probabilities = torch.tensor([0.1, 0.2, 0.3, 0.4])
    draws = 2_000
    logits = torch.full((1, scheduler._column_ids.shape[0]), float("-inf"))
    logits[0, columns] = probabilities.log()
    generator = torch.Generator().manual_seed(0)
    session = _Session(id="sampler", generator=generator, reserved=0)
    call = _Call(request=GenerateRequest("sampler", (1,), sampling=SamplingParams(temperature=1.0)),
                 future=Future(), session=session)
    ids = scheduler._sample(call, logits.expand(draws, -1), None, list(range(draws)))
    expected_ids = [vocab.first_speech_id + c for c in columns[:3]] + [vocab.speech_end_id]
    counts = torch.tensor([(ids == i).sum().item() for i in expected_ids], dtype=torch.float32)
    assert counts.sum() == draws  # nothing outside the four allowed columns
    sigma = (draws * probabilities * (1 - probabilities)).sqrt()
    assert ((counts - draws * probabilities).abs() < 4 * sigma).all(), counts


def test_a_full_kv_budget_is_resource_exhausted_at_the_ingress():
    import grpc

    from deployments.ingress import _status_of

    code, message = _status_of(KVBudgetExhausted("this LM replica's KV budget is full"), timeout=60)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "KV budget is full" in message
