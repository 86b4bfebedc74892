"""Through the service: a search costs what its LM tokens cost (README "What a search costs").

Each sampled token is decoded once, n = 1 runs no verifier unless the client asks for scores, and
the codec drops the work of a request whose deadline has passed without running it.
"""

from __future__ import annotations

import time

import pytest

from llasa_client import SynthesisOptions, TTSClient

QUICK = dict(max_speech_tokens=30, step_tokens=10, seed=7)
APP = "llasa"


@pytest.fixture
def client(service):
    with TTSClient(service.address) as tts:
        yield tts


def test_n1_runs_no_verifier_unless_asked_for_scores(client):
    plain = client.synthesize("Nothing to choose.", SynthesisOptions(outcome_verifiers={"asr": 1.0}, **QUICK))
    assert list(plain.verifiers_used) == [] and not plain.account.verifiers and plain.audio
    assert not plain.chosen.outcome_scores and not plain.chosen.HasField("final_score")
    scored = client.synthesize("Score me anyway.", SynthesisOptions(outcome_verifiers={"asr": 1.0}, return_scores=True,
                                                                  **QUICK))
    assert list(scored.verifiers_used) == ["asr"] and scored.account.verifiers["asr"].items == 1
    assert [v.verifier for v in scored.chosen.outcome_scores] == ["asr"]


def test_a_tree_search_decodes_each_token_once(client):
    options = SynthesisOptions(strategy="beam", n=4, beam_width=2, process_verifiers={"speaker": 1.0}, **QUICK)
    response = client.synthesize("Decode me once.", options)
    codec = response.account.codec
    assert codec.audio_seconds == pytest.approx(response.account.lm_generated_tokens / 50)
    assert 0 < codec.context_audio_seconds <= codec.audio_seconds
    assert response.chosen.audio_seconds == pytest.approx(response.audio_seconds)


def test_codec_work_past_its_deadline_is_dropped_unrun(service):
    from ray import serve

    from deployments.request_context import DeadlineExceeded

    codec = serve.get_deployment_handle("CodecDecoder", app_name=APP)
    before = codec.counters.remote().result(timeout_s=30)
    with pytest.raises(DeadlineExceeded):
        codec.decode.remote([[1, 2, 3]], time.time() - 1).result(timeout_s=30)
    assert len(codec.decode.remote([[1, 2, 3]], time.time() + 60).result(timeout_s=30)[0]) == 3 * 320
    after = codec.counters.remote().result(timeout_s=30)
    if after["replica"] == before["replica"]:  # one replica in the test config
        assert after["expired"] == before["expired"] + 1 and after["items"] == before["items"] + 1
