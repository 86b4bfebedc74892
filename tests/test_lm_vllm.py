"""The vLLM backend's request building and output reading, without vLLM (CI has no GPU)."""

from __future__ import annotations

import pytest

from llasa_core.lm import SessionError
from llasa_core.lm_vllm import VLLMRequests
from llasa_core.stages import GenerateRequest, SamplingParams


@pytest.fixture(scope="module")
def built(tiny_lm):
    return VLLMRequests(tiny_lm.vocab), tiny_lm.vocab


def test_a_start_is_one_request_of_n_samples_of_the_prompt(built):
    requests, vocab = built
    prompt = (5, 6, 7, 8)
    request = GenerateRequest("s", prompt, num_candidates=4, max_new_tokens=25, max_total_tokens=20, seed=3,
                              sampling=SamplingParams(temperature=0.7, top_k=0, top_p=0.9))
    [step] = requests.steps(request, [], call=0)
    assert step.prompt_token_ids == list(prompt) and step.children == [0, 1, 2, 3]
    params = step.sampling
    assert params["n"] == 4 and params["max_tokens"] == 20 - 4  # the length cap binds before the chunk
    assert params["temperature"] == 0.7 and params["top_p"] == 0.9 and params["top_k"] == -1
    assert params["stop_token_ids"] == [vocab.speech_end_id]
    allowed = set(params["allowed_token_ids"])
    assert allowed == set(vocab.allowed_output_ids()) | {vocab.speech_end_id}
    assert params["seed"] is not None and params["seed"] == requests.steps(request, [], call=0)[0].sampling["seed"]
    assert requests.steps(GenerateRequest("s", prompt, seed=None), [], call=0)[0].sampling["seed"] is None


def test_a_step_sends_each_parent_prefix_once_with_n_for_its_forks(built):
    requests, _ = built
    rows = [[1, 2, 3], None, [1, 2, 4, 5]]
    request = GenerateRequest("s", (1, 2), parents=(2, 2, 0), max_new_tokens=10, seed=3)
    steps = requests.steps(request, rows, call=1)
    assert [(s.prompt_token_ids, s.sampling["n"], s.children) for s in steps] == [
        ([1, 2, 4, 5], 2, [0, 1]), ([1, 2, 3], 1, [2])]
    assert steps[0].sampling["seed"] != steps[1].sampling["seed"]  # each request its own stream
    with pytest.raises(SessionError, match="already finished"):
        requests.steps(GenerateRequest("s", (1, 2), parents=(1,)), rows, call=1)
    with pytest.raises(SessionError, match="not a row"):
        requests.steps(GenerateRequest("s", (1, 2), parents=(3,)), rows, call=1)


def test_outputs_become_codes_finished_or_truncated(built):
    requests, vocab = built
    first, end = vocab.first_speech_id, vocab.speech_end_id
    prefix = [9, 9]
    ended, row = requests.continuation(prefix, [first + 3, first + 1, end], True, max_total_tokens=100)
    assert ended.codes == (3, 1) and ended.finished and not ended.truncated and row is None
    going, row = requests.continuation(prefix, [first + 2], False, max_total_tokens=100)
    assert going.codes == (2,) and not going.finished and row == prefix + [first + 2]
    capped, row = requests.continuation(prefix, [first + 2, first + 5], False, max_total_tokens=4)
    assert capped.finished and capped.truncated and capped.codes == (2, 5) and row is None
