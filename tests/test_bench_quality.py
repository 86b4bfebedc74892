"""`llasa-bench quality` on a tiny setting: the files it writes and the consistency of its numbers."""

import csv
import json

import pytest

from llasa_bench.cli import main


@pytest.fixture(scope="module")
def quality_run(tmp_path_factory, tiny_llasa_path, tiny_xcodec2_path):
    out = tmp_path_factory.mktemp("quality")
    sentences = out / "sentences.txt"
    sentences.write_text("Hello there.\nThe cat sat on the mat.\n")
    main([
        "quality", "--sentences", str(sentences), "--out", str(out), "--budgets", "1,2",
        "--strategies", "best_of_n,beam,prm_orm", "--max-seconds", "0.4", "--step-tokens", "10",
        "--model", str(tiny_llasa_path), "--codec", str(tiny_xcodec2_path),
        "--verifier-asr", "pocketsphinx", "--eval-asr", "pocketsphinx",
    ])
    return out


def read(path):
    with path.open() as f:
        return list(csv.DictReader(f))


def test_writes_rows_summary_json_and_plot(quality_run):
    rows = read(quality_run / "quality_rows.csv")
    summary = read(quality_run / "quality_summary.csv")
    assert len(rows) == 4 * 2  # best_of_n N=1,2, beam N=2, prm_orm N=2; two sentences each
    for column in ("strategy", "n", "eval_wer_pocketsphinx", "lm_prefill_tokens", "lm_generated_tokens",
                   "lm_tokens", "codec_audio_seconds", "verifier_seconds", "wall_seconds"):
        assert column in rows[0]
    assert {(s["strategy"], s["n"]) for s in summary} == {
        ("best_of_n", "1"), ("best_of_n", "2"), ("beam", "2"), ("prm_orm", "2")}
    assert (quality_run / "quality.png").read_bytes()[:4] == b"\x89PNG"
    report = json.loads((quality_run / "quality.json").read_text())
    assert report["evaluation"]["wer_pocketsphinx"]["eval_is_verifier"] is True
    assert "none of the search's verifiers" in report["judge"]
    assert report["overfitting_verifier_metric"] == "wer_pocketsphinx"


def test_judge_and_overfitting_gap_beside_the_verifier(quality_run):
    summary = {(s["strategy"], int(s["n"])): s for s in read(quality_run / "quality_summary.csv")}
    for entry in summary.values():
        assert float(entry["eval_judge_whisper_base"]) >= 0
        gap = float(entry["verifier_gain"]) - float(entry["judge_gain"])
        assert float(entry["overfitting_gap"]) == pytest.approx(gap)
    baseline = summary[("best_of_n", 1)]
    assert float(baseline["verifier_gain"]) == float(baseline["judge_gain"]) == 0
    two = summary[("best_of_n", 2)]
    assert float(two["judge_gain"]) == pytest.approx(
        float(baseline["eval_judge_whisper_base"]) - float(two["eval_judge_whisper_base"]))


def test_numbers_are_consistent(quality_run):
    summary = {(s["strategy"], int(s["n"])): s for s in read(quality_run / "quality_summary.csv")}
    one, two = summary[("best_of_n", 1)], summary[("best_of_n", 2)]
    assert float(two["lm_generated_tokens"]) == 2 * float(one["lm_generated_tokens"]) == 2 * 20
    assert float(two["lm_prefill_tokens"]) == float(one["lm_prefill_tokens"])  # prompt prefilled once
    assert float(one["verifier_seconds"]) == 0 and float(two["verifier_seconds"]) > 0
    for row in read(quality_run / "quality_rows.csv"):
        assert int(row["lm_tokens"]) == int(row["lm_prefill_tokens"]) + int(row["lm_generated_tokens"])
        assert 0 <= float(row["eval_wer_pocketsphinx"])
        assert float(row["codec_audio_seconds"]) >= float(row["audio_seconds"]) == 0.4
