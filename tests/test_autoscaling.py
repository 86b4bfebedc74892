"""Autoscaling per stage: bench/bench_autoscaling.py on serve_config.yaml as committed, with a short
load that queues on the ASR verifier. That stage scales up and back down; the LM stays at one.

Its own private Ray cluster and `serve run` (the shared `service` fixture pins every stage to a
fixed count for the tests that count and kill replicas).
"""

import json
import subprocess
import sys

import pytest

from serve_support import ROOT

# Measured on 2 shared cores, five runs (README "Autoscaling per stage"): up 18-22 s after the load
# starts (the queue passes the target, 5 s of upscale delay, then the replica loads Whisper on busy
# cores), down 22-23 s after it ends (20 s of downscale delay); the test takes 104-108 s. A CI run
# beside two other CPU-bound jobs (load average 8-10 on the 2 cores) saw the second replica RUNNING
# only 83 s after the load started: loading Whisper is what slows with the cores, not the decision.
# So the decision (the replica asked for, STARTING) gets the tight bound, RUNNING a wide one.
SCALE_UP_DECIDED_WITHIN_S = 45
SCALE_UP_RUNNING_WITHIN_S = 150
SCALE_DOWN_WITHIN_S = 50


@pytest.mark.own_cluster
def test_asr_verifier_scales_up_under_its_queue_and_back_down_while_the_lm_stays(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "bench" / "bench_autoscaling.py"), "--out", str(tmp_path),
                    "--load-seconds", "30", "--idle-seconds", "2", "--cooldown-seconds", "200"],
                   cwd=ROOT, check=True, timeout=600)
    report = json.loads((tmp_path / "autoscaling.json").read_text())
    assert set(report["requests_by_status"]) == {"OK"} and report["requests_by_status"]["OK"] >= 6
    assert report["samples"][0]["replicas"]["Verifier-asr"] == 1
    assert report["asr_scale_up_decided_after_s"] is not None
    assert report["asr_scale_up_decided_after_s"] <= SCALE_UP_DECIDED_WITHIN_S
    assert report["asr_scaled_up_after_s"] is not None and report["asr_scaled_up_after_s"] <= SCALE_UP_RUNNING_WITHIN_S
    assert report["max_replicas_seen"]["Verifier-asr"] == 2
    assert report["asr_scaled_down_after_s"] is not None and report["asr_scaled_down_after_s"] <= SCALE_DOWN_WITHIN_S
    assert report["samples"][-1]["replicas"]["Verifier-asr"] == 1
    # the LM never moved: one replica in every sample
    assert report["min_replicas_seen"]["LMSampler"] == report["max_replicas_seen"]["LMSampler"] == 1
    # the autoscaler's input for the ASR passed its target during the load: the queue it scaled on.
    # (Which stage a search spent longest in is a figure the bench prints, not asserted: on 2
    # contended cores a CI run saw the LM at 19 s a request against the ASR's 18 s, where an idle
    # run saw 5.6 s against 16.6 s.)
    assert report["peak_ongoing_requests"]["Verifier-asr"] > report["autoscaling"]["Verifier-asr"]["target_ongoing_requests"]
    assert (tmp_path / "autoscaling.png").read_bytes()[:4] == b"\x89PNG"
