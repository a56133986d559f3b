"""Learning curves from a trainer's MODEL_DIR/metrics.jsonl.

The trainer appends one JSON object per logged step; training lines have no
`split`, evaluation lines have `split: "validation"` and a `task`:

  {"step": 20, "loss": 6.91, "accuracy": 0.04, "learning_rate": 0.01, ...}
  {"step": 50, "split": "validation", "task": "mednli", "accuracy": 0.61, "macro_f1": 0.55}

  >>> curves = read_curves("runs/pretrain/metrics.jsonl")
  >>> curves.train_loss[:2]
  [(20, 6.91), (40, 6.12)]
  >>> plot_curves(curves, "pretrain_loss.png", title="pretraining")
"""

import dataclasses
import json
import math
import os
from typing import Optional


@dataclasses.dataclass
class Curves:
  """(step, value) series read from one metrics.jsonl."""
  train_loss: list[tuple[int, float]] = dataclasses.field(default_factory=list)
  # {"task/metric": [(step, value)]} of decoded validation metrics.
  validation: dict[str, list[tuple[int, float]]] = dataclasses.field(default_factory=dict)
  # Teacher-forced validation loss (pretraining).
  validation_loss: list[tuple[int, float]] = dataclasses.field(default_factory=list)


def read_curves(path: str) -> Curves:
  """Parse a metrics.jsonl; a missing file gives empty curves."""
  curves = Curves()
  if not os.path.isfile(path):
    return curves
  with open(path, encoding="utf-8") as f:
    for line in f:
      line = line.strip()
      if not line:
        continue
      record = json.loads(line)
      step = int(record.get("step", 0))
      split = record.get("split")
      if split is None and "loss" in record:
        curves.train_loss.append((step, float(record["loss"])))
      elif split == "validation" and record.get("kind") == "teacher_forced":
        if "loss" in record:
          curves.validation_loss.append((step, float(record["loss"])))
      elif split == "validation":
        task = record.get("task", "")
        for name, value in record.items():
          if name in ("step", "split", "task", "kind") or not isinstance(value, (int, float)):
            continue
          curves.validation.setdefault(f"{task}/{name}", []).append((step, float(value)))
  return curves


def loss_drop(curves: Curves) -> Optional[tuple[float, float]]:
  """Return (first, last) logged training loss, or None without training lines."""
  finite = [(s, v) for s, v in curves.train_loss if math.isfinite(v)]
  if not finite:
    return None
  return finite[0][1], finite[-1][1]


def plot_curves(curves: Curves, out_png: str, *, title: str,
                metrics: Optional[list[str]] = None) -> None:
  """Plot training loss (left axis) and validation metrics (right axis) against the step."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, ax = plt.subplots(figsize=(6, 4))
  if curves.train_loss:
    ax.plot(*zip(*curves.train_loss), label="train loss", color="tab:blue")
  if curves.validation_loss:
    ax.plot(*zip(*curves.validation_loss), label="validation loss", color="tab:cyan",
            linestyle="--", marker="o")
  ax.set_xlabel("step")
  ax.set_ylabel("loss")
  ax.grid(True, alpha=0.3)
  handles, labels = ax.get_legend_handles_labels()

  names = metrics if metrics is not None else sorted(curves.validation)
  names = [n for n in names if n in curves.validation]
  if names:
    right = ax.twinx()
    for name in names:
      right.plot(*zip(*curves.validation[name]), marker="o", linestyle=":", label=f"val {name}")
    right.set_ylabel("validation metric")
    more_handles, more_labels = right.get_legend_handles_labels()
    handles, labels = handles + more_handles, labels + more_labels
  if handles:
    ax.legend(handles, labels, fontsize=8, loc="best")
  ax.set_title(title)
  fig.tight_layout()
  fig.savefig(out_png, dpi=110)
  plt.close(fig)
