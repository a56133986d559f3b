"""Tests for the pieces of `clinical-t5 demo` (the full demo runs with `make demo`)."""

import json
import os

import pytest

from clinical_t5 import cli
from clinical_t5 import demo
from clinical_t5.experiment import results_db


def test_mednli_majority_baseline(synth_dir):
  label, accuracy = demo.mednli_majority_baseline(str(synth_dir))
  assert label in ("entailment", "contradiction", "neutral")
  with open(synth_dir / "mednli" / "mli_test_v1.jsonl", encoding="utf-8") as f:
    test = [json.loads(line)["gold_label"] for line in f]
  assert accuracy == pytest.approx(test.count(label) / len(test))
  # The synthetic labels are not balanced so perfectly that chance equals the baseline.
  assert 1 / 3 <= accuracy < 0.9


def test_radqa_no_answer_baseline(synth_dir):
  share = demo.radqa_no_answer_baseline(str(synth_dir))
  assert 0.0 < share < 1.0


def test_stages_skip_complete_ones():
  calls, lines = [], []
  stages = demo.Stages(total=2, printer=lines.append)
  stages.run("a", lambda: True, lambda: calls.append("a"))
  stages.run("b", lambda: False, lambda: calls.append("b"))
  assert calls == ["b"]
  assert stages.skipped == ["a"]
  assert lines[0] == "[1/2] a: already complete, skipped"
  assert lines[1] == "[2/2] b: running"


def test_estimate_scales_with_steps():
  base = demo.estimate_seconds(200, 150)
  assert base < 15 * 60
  assert demo.estimate_seconds(400, 150) == pytest.approx(base + demo.STAGE_SECONDS["pretrain"])


def test_summary_markdown(tmp_path, synth_dir):
  out = tmp_path / "demo"
  (out / "pretrain").mkdir(parents=True)
  os.symlink(synth_dir, out / "data")
  (out / "pretrain" / "metrics.jsonl").write_text(
      json.dumps({"step": 10, "loss": 7.0}) + "\n" + json.dumps({"step": 300, "loss": 3.5}) + "\n")
  (out / "finetune").mkdir()
  with results_db.ResultsDB(str(out / "finetune" / "results.sqlite")) as db:
    key = results_db.RunKey("clinical-t5-tiny", "mednli", 1.0, 0)
    db.mark_running(key, run_dir=str(out / "finetune" / "runs" / "x"))
    db.mark_done(key, validation={"accuracy": 0.99}, test={"accuracy": 0.99, "macro_f1": 0.98},
                 best_step=300, selection_metric="accuracy", wall_s=1.0)
  text = demo.summary_markdown(str(out), {"synth": 2.0})
  assert "7.000 at the first logged step -> 3.500 at the last (falling)" in text
  assert "| MedNLI | accuracy | 0.990 |" in text
  assert "| yes |" in text
  assert "synth 2 s" in text


def test_cli_rejects_bad_steps(tmp_path, capsys):
  assert cli.main(["demo", "--out", str(tmp_path / "d"), "--pretrain-steps", "0"]) == 2
  assert "--pretrain-steps" in capsys.readouterr().err
