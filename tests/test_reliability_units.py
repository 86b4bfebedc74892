"""Issue 7's pieces without a cluster: partial verifiers in the search core, the LM stopping a
released session mid-chunk, the API-key checker, and the orchestrator's retry policy."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from ray.exceptions import ActorDiedError, RayTaskError

from deployments.auth import AuthConfigError, KeyChecker, load_keys, presented_key
from deployments.config import AuthArgs, ResilienceArgs
from deployments import request_context
from deployments.orchestrator import StageUnavailableError, call_idempotent
from deployments.request_context import DeadlineExceeded
from llasa_core.engine import LlasaTTS
from llasa_core.lm import SessionError
from llasa_core.search import SearchConfig, VerifiersUnavailableError
from llasa_core.stages import GenerateRequest, VerifierScore


class Steady:
    def score(self, waveforms, contexts):
        return [VerifierScore(score=0.5 + 0.01 * i, metric="m") for i, _ in enumerate(waveforms)]


class Broken:
    def score(self, waveforms, contexts):
        raise RuntimeError("replica gone\nsecond line")


def _engine(tiny_lm, tiny_codec):
    return LlasaTTS(tiny_lm, tiny_codec, {"steady": Steady(), "broken": Broken()})


def _config(**kwargs):
    return SearchConfig(strategy="beam", n=2, beam_width=2, step_tokens=10, max_new_tokens=30, seed=1, **kwargs)


def test_partial_verifiers_drop_the_failed_one_and_say_so(tiny_lm, tiny_codec):
    config = _config(process_verifiers={"steady": 1.0, "broken": 1.0},
                     outcome_verifiers={"steady": 1.0, "broken": 1.0}, allow_partial_verifiers=True)
    result = asyncio.run(_engine(tiny_lm, tiny_codec).synthesize("Partial.", config))
    assert result.verifiers_used == ["steady"]
    assert result.verifiers_failed == {"broken": "RuntimeError: replica gone"}
    assert "broken" not in result.account.verifiers  # asked once, failed, never asked again
    chosen = result.chosen
    verdict = chosen.outcome_scores["broken"]
    assert verdict.score is None and verdict.reason == "verifier failed: RuntimeError: replica gone"
    assert chosen.final_score == chosen.outcome_scores["steady"].score  # steady alone, renormalised
    assert chosen.step_scores and all(s >= 0.5 for s in chosen.step_scores)


def test_without_partial_verifiers_a_failure_fails_the_search(tiny_lm, tiny_codec):
    config = _config(process_verifiers={"steady": 1.0, "broken": 1.0})
    before = set(tiny_lm._sessions)  # the LM is shared with other tests
    with pytest.raises(RuntimeError, match="replica gone"):
        asyncio.run(_engine(tiny_lm, tiny_codec).synthesize("Strict.", config))
    # the search's session was released all the same (the scheduler thread drops it at its next turn)
    deadline = time.monotonic() + 10
    while not set(tiny_lm._sessions) <= before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert set(tiny_lm._sessions) <= before


def test_no_verifier_left_is_unavailable(tiny_lm, tiny_codec):
    config = _config(process_verifiers={"broken": 1.0}, allow_partial_verifiers=True)
    with pytest.raises(VerifiersUnavailableError, match="broken: RuntimeError"):
        asyncio.run(_engine(tiny_lm, tiny_codec).synthesize("Nothing left.", config))


def test_release_stops_a_running_generate_at_the_next_token(tiny_lm):
    prompt = tuple(tiny_lm.prompt_ids("Stop me."))
    request = GenerateRequest(session_id="stop-me", prompt_ids=prompt, num_candidates=2, max_new_tokens=1500,
                              max_total_tokens=4000, seed=1)
    before = tiny_lm.tokens_computed
    errors = []
    worker = threading.Thread(target=lambda: errors.append(_catch(tiny_lm.generate, request)))
    worker.start()
    time.sleep(0.3)
    tiny_lm.release("stop-me")
    started = time.monotonic()
    worker.join(30)
    assert time.monotonic() - started < 2 and not worker.is_alive()
    assert isinstance(errors[0], SessionError) and "released" in str(errors[0])
    assert tiny_lm.tokens_computed - before < 2 * 1500 + len(prompt)
    assert "stop-me" not in tiny_lm._sessions


def _catch(fn, *args):
    try:
        fn(*args)
    except Exception as err:  # noqa: BLE001
        return err
    return None


# API keys -------------------------------------------------------------------------------------------
def test_keys_from_env_and_file(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("# comment\nfile-key-1\n\n  file-key-2  # trailing comment\n")
    args = AuthArgs(api_keys_env="MY_KEYS", api_keys_file=str(keys))
    assert load_keys(args, {"MY_KEYS": "env-a, env-b,,"}) == ["env-a", "env-b", "file-key-1", "file-key-2"]
    with pytest.raises(AuthConfigError, match="no key was found"):
        load_keys(AuthArgs(api_keys_env="UNSET_VARIABLE"), {})
    with pytest.raises(AuthConfigError, match="cannot be read") as info:
        load_keys(AuthArgs(api_keys_file=str(tmp_path / "missing")), {})
    assert "file-key" not in str(info.value)
    assert KeyChecker.from_args(AuthArgs()) is None and not AuthArgs().enabled


def test_key_checker():
    checker = KeyChecker(["alpha-key", "beta-key"])
    assert checker.allows([("application", "llasa"), ("x-api-key", "alpha-key")])
    assert checker.allows([("authorization", "Bearer beta-key")])
    assert checker.allows([("Authorization", "bearer   beta-key ")])
    for metadata in ([], [("x-api-key", "")], [("x-api-key", "alpha-key2")], [("x-api-key", "alpha-ke")],
                     [("authorization", "Basic alpha-key")], [("authorization", "alpha-key")],
                     [("x-api-key", b"\xff\xfe")]):
        assert not checker.allows(metadata), metadata
    assert presented_key([("x-other", "v")]) is None


# Retries --------------------------------------------------------------------------------------------
POLICY = ResilienceArgs(stage_retries=2, retry_backoff_s=0.01, stage_timeout_s=0.5)


def test_call_idempotent_repeats_replica_failures_then_gives_up():
    attempts = []

    async def dies_twice():
        attempts.append(1)
        if len(attempts) < 3:
            raise ActorDiedError()
        return "ok"

    assert asyncio.run(call_idempotent("codec", dies_twice, POLICY)) == "ok" and len(attempts) == 3

    async def always_dies():
        raise ActorDiedError()

    with pytest.raises(StageUnavailableError, match="failed 3 times, last: ActorDiedError"):
        asyncio.run(call_idempotent("verifier 'asr'", always_dies, POLICY))


def test_a_slow_stage_is_waited_for_until_the_deadline_and_never_repeated():
    """Queueing is not death: a slow answer within the request's deadline is taken while the stage
    has a running replica; past the deadline the call ends with DeadlineExceeded at once, not
    after retries."""
    attempts = []

    async def slow(seconds):
        attempts.append(1)
        await asyncio.sleep(seconds)
        return "late but fine"

    async def running():
        return True

    async def within(budget, seconds):
        request_context.deadline.set(time.time() + budget)
        return await call_idempotent("codec", lambda: slow(seconds), POLICY, running)

    assert asyncio.run(within(5.0, 1.0)) == "late but fine"  # longer than stage_timeout_s, within the budget
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="deadline passed while waiting for codec"):
        asyncio.run(within(0.3, 60))
    assert time.monotonic() - started < 1 and len(attempts) == 2
    with pytest.raises(DeadlineExceeded):
        asyncio.run(within(-1.0, 0))  # out of time before the call: not even sent
    assert len(attempts) == 2


def test_a_stage_without_a_running_replica_is_unavailable_before_the_deadline():
    """Serve's router waits forever for a deployment with no replica: every stage_timeout_s the
    call asks whether one runs, and with none it fails like a dead replica (retried, then
    StageUnavailableError), long before the request's deadline."""
    async def hangs():
        await asyncio.sleep(60)

    async def none_running():
        return False

    async def call():
        request_context.deadline.set(time.time() + 60)
        return await call_idempotent("verifier 'asr'", hangs, POLICY, none_running)

    started = time.monotonic()
    with pytest.raises(StageUnavailableError, match="failed 3 times, last: no answer within .* no running replica"):
        asyncio.run(call())
    assert time.monotonic() - started < 3


def test_call_idempotent_never_repeats_an_application_error():
    attempts = []

    async def bad_input():
        attempts.append(1)
        raise ValueError("bad codes")

    with pytest.raises(ValueError):
        asyncio.run(call_idempotent("codec", bad_input, POLICY))
    task_error = RayTaskError("decode", "traceback", ValueError("bad codes"))

    async def remote_bad_input():
        attempts.append(1)
        raise task_error

    with pytest.raises(RayTaskError):
        asyncio.run(call_idempotent("codec", remote_bad_input, POLICY))
    assert len(attempts) == 2
