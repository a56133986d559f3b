"""FLOPs per sequence, MFU peak lookup, metrics.jsonl and the progress line."""

import json

from clinical_t5.model import config as model_config
from clinical_t5.train import metrics


def test_flops_per_sequence_matches_published_counts():
  base = model_config.preset("t5_1_1_base")
  large = model_config.preset("t5_1_1_large")
  # Reference values: 0.426 and 1.468 TFLOP per 512 -> 114 training sequence.
  assert abs(metrics.train_flops_per_sequence(base, 512, 114) / 1e12 - 0.426) < 0.002
  assert abs(metrics.train_flops_per_sequence(large, 512, 114) / 1e12 - 1.468) < 0.005


def test_peak_override_and_table():
  assert metrics.peak_flops_per_device(123.0) == 123.0
  assert dict(metrics.PEAK_FLOPS)["H100"] == 989e12


def test_writer_appends_jsonl(tmp_path):
  writer = metrics.MetricsWriter(str(tmp_path))
  writer.write(10, {"loss": 2.5, "mfu": 0.3})
  writer.write(10, {"accuracy": 0.8}, split="validation", extra={"task": "mednli"})
  writer.close()
  lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert lines[0] == {"step": 10, "loss": 2.5, "mfu": 0.3}
  assert lines[1] == {"step": 10, "split": "validation", "task": "mednli", "accuracy": 0.8}
  assert list((tmp_path / "train").glob("events.out.tfevents.*"))


def test_progress_line_has_eta():
  line = metrics.format_progress(200, 1000, 3.9123, 0.5, 8000.0, 0.31)
  assert line.startswith("step 200/1000 (20%) loss 3.9123") and "eta 00:06:40" in line
