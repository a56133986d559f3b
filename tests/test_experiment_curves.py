"""Tests for clinical_t5.experiment.curves on a hand-written metrics.jsonl."""

import json

from clinical_t5.experiment import curves

LINES = [
    {"step": 10, "loss": 7.5, "accuracy": 0.01, "learning_rate": 0.1},
    {"step": 20, "loss": 6.0, "accuracy": 0.05, "learning_rate": 0.1},
    {"step": 20, "split": "validation", "task": "mednli", "kind": "teacher_forced", "loss": 6.2},
    {"step": 20, "split": "validation", "task": "mednli", "accuracy": 0.55, "macro_f1": 0.4},
    {"step": 20, "split": "timing", "eval_s": 1.5},
    {"step": 30, "loss": float("nan")},
    {"step": 40, "loss": 4.0, "accuracy": 0.2, "learning_rate": 0.1},
    {"step": 40, "split": "validation", "task": "mednli", "accuracy": 0.65, "macro_f1": 0.6},
]


def _write(tmp_path):
  path = tmp_path / "metrics.jsonl"
  path.write_text("".join(json.dumps(line) + "\n" for line in LINES))
  return str(path)


def test_read_curves(tmp_path):
  result = curves.read_curves(_write(tmp_path))
  assert result.train_loss[:2] == [(10, 7.5), (20, 6.0)]
  assert result.validation_loss == [(20, 6.2)]
  assert result.validation["mednli/accuracy"] == [(20, 0.55), (40, 0.65)]
  assert "timing/eval_s" not in result.validation


def test_loss_drop_skips_nan(tmp_path):
  assert curves.loss_drop(curves.read_curves(_write(tmp_path))) == (7.5, 4.0)
  assert curves.loss_drop(curves.read_curves(str(tmp_path / "missing.jsonl"))) is None


def test_plot_curves_writes_png(tmp_path):
  out = tmp_path / "curve.png"
  curves.plot_curves(curves.read_curves(_write(tmp_path)), str(out), title="t",
                     metrics=["mednli/accuracy"])
  assert out.read_bytes()[:4] == b"\x89PNG"
