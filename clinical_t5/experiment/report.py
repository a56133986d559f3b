"""Paper-style tables and plots from the rows of a sweep's results database.

Input rows are `ResultsDB.rows()` dicts; only `status == "done"` rows count:

  {"checkpoint": "ours-tiny", "task": "mednli", "fraction": 1.0, "seed": 1,
   "status": "done", "test": {"accuracy": 0.71, "macro_f1": 0.66}, ...}

`write_report(rows, out_dir)` writes

  report.md            Table-3-style main table (mean ± std over seeds), one
                       Tables-11-15-style table per metric (score per training
                       fraction) and the list of failed runs
  main_table.csv       the main table, mean and std in separate columns
  fraction_table.csv   long format: task, metric, model, fraction, mean, std, n, source
  runs.csv             every run with its test metrics, best step, time and error
  figure4.png          Figure-4-style score vs training fraction, one panel per task
  figure4_<task>.png   the same panel alone

With `with_published`, the numbers of Lehman et al. (CHIL 2023, see
`published.py`) appear beside
ours: its models as extra rows of each table, its low-resource models as
dashed lines and its in-context-learning baselines as dotted horizontal lines.
"""

import csv
import dataclasses
import io
import math
import os
import statistics
from typing import Any, Iterable, Optional, Sequence

from clinical_t5.experiment import published
from clinical_t5.experiment import taskinfo


@dataclasses.dataclass(frozen=True)
class Cell:
  """An aggregated score: mean ± std over `n` seeds (std None for one seed or none published)."""
  mean: float
  std: Optional[float]
  n: int
  source: str = "ours"

  def format(self) -> str:
    if self.std is None:
      return f"{self.mean:.3f} (1 seed)" if self.source == "ours" and self.n == 1 else f"{self.mean:.3f}"
    return f"{self.mean:.3f} ± {self.std:.3f}"


CellKey = tuple[str, str, str, float]  # (model, task, metric, fraction)


def aggregate(rows: Iterable[dict[str, Any]]) -> dict[CellKey, Cell]:
  """Average each test metric over the seeds of every (checkpoint, task, fraction)."""
  values: dict[CellKey, list[float]] = {}
  for row in rows:
    if row.get("status") != "done":
      continue
    for metric, value in (row.get("test") or {}).items():
      if isinstance(value, (int, float)) and math.isfinite(value):
        key = (row["checkpoint"], row["task"], metric, float(row["fraction"]))
        values.setdefault(key, []).append(float(value))

  cells = {}
  for key, scores in values.items():
    # NOTE: sample standard deviation (n - 1). Lehman et al. do not say which
    # estimator their "± std" over 3 seeds uses.
    std = statistics.stdev(scores) if len(scores) > 1 else None
    cells[key] = Cell(mean=statistics.fmean(scores), std=std, n=len(scores))
  return cells


def _checkpoints(rows: Sequence[dict[str, Any]]) -> list[str]:
  return list(dict.fromkeys(row["checkpoint"] for row in rows))


def _columns(cells: dict[CellKey, Cell], with_published: bool) -> list[taskinfo.Column]:
  tasks = {key[1] for key in cells}
  if with_published and not tasks:
    tasks = set(taskinfo.TASKS)
  return [c for c in taskinfo.MAIN_COLUMNS if c.task in tasks]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
  lines += ["| " + " | ".join(row) + " |" for row in rows]
  return "\n".join(lines)


def main_table(cells: dict[CellKey, Cell], checkpoints: Sequence[str], fraction: float,
               with_published: bool) -> tuple[list[str], list[list[Optional[Cell]]], list[str]]:
  """Build the Table-3-style table: returns (column labels, cell rows, row labels)."""
  columns = _columns(cells, with_published)
  labels, grid = [], []
  for checkpoint in checkpoints:
    labels.append(checkpoint)
    grid.append([cells.get((checkpoint, c.task, c.metric, fraction)) for c in columns])
  if with_published:
    for model in published.MAIN_TABLE_MODELS:
      row = []
      for c in columns:
        hit = published.lookup(model, c.task, c.metric, 1.0)
        row.append(None if hit is None else Cell(hit.mean, hit.std, 3, hit.table))
      if any(row):
        icl = " (ICL)" if model in published.ICL_MODELS else ""
        labels.append(f"paper: {model}{icl}")
        grid.append(row)
  return [c.label for c in columns], grid, labels


def fraction_table(cells: dict[CellKey, Cell], checkpoints: Sequence[str], column: taskinfo.Column,
                   with_published: bool) -> tuple[list[float], list[str], list[list[Optional[Cell]]]]:
  """Build a Tables-11-15-style table for one metric: (fractions, row labels, cell rows)."""
  fractions = {key[3] for key in cells if key[1] == column.task and key[2] == column.metric}
  if with_published:
    fractions |= set(taskinfo.PAPER_FRACTIONS)
  fractions_sorted = sorted(fractions)
  labels, grid = [], []
  for checkpoint in checkpoints:
    row = [cells.get((checkpoint, column.task, column.metric, f)) for f in fractions_sorted]
    if any(row):
      labels.append(checkpoint)
      grid.append(row)
  if with_published:
    for model in published.LOW_RESOURCE_MODELS:
      row = []
      for f in fractions_sorted:
        hit = published.lookup(model, column.task, column.metric, f)
        row.append(None if hit is None else Cell(hit.mean, hit.std, 3, hit.table))
      labels.append(f"paper: {model}")
      grid.append(row)
  return fractions_sorted, labels, grid


def _fmt(cell: Optional[Cell]) -> str:
  return "–" if cell is None else cell.format()


def _sources(row: Sequence[Optional[Cell]]) -> str:
  tables = sorted({c.source for c in row if c is not None and c.source != "ours"},
                  key=lambda t: int(t.split()[-1]))
  return ", ".join(tables)


def _percent(fraction: float) -> str:
  return f"{fraction * 100:g}%"


def render_markdown(rows: Sequence[dict[str, Any]], *, with_published: bool = False,
                    main_fraction: Optional[float] = None) -> str:
  """Render report.md: the main table, one table per metric over fractions, failed runs."""
  cells = aggregate(rows)
  checkpoints = _checkpoints(rows)
  done = [r for r in rows if r.get("status") == "done"]
  fraction = main_fraction if main_fraction is not None else max(
      (float(r["fraction"]) for r in done), default=1.0)
  seeds = sorted({r["seed"] for r in done})

  parts = ["# Finetuning results", "",
           f"{len(done)} finished runs, {sum(r.get('status') == 'failed' for r in rows)} failed, "
           f"{sum(r.get('status') == 'running' for r in rows)} unfinished; "
           f"test-split scores, mean ± std over seeds {seeds}.", ""]

  header, grid, labels = main_table(cells, checkpoints, fraction, with_published)
  parts += [f"## Main results (training fraction {_percent(fraction)}; cf. the paper's Table 3)", ""]
  md_rows = [[label] + [_fmt(c) for c in row] + ([_sources(row)] if with_published else [])
             for label, row in zip(labels, grid)]
  parts += [markdown_table(["Model"] + header + (["Paper source"] if with_published else []),
                           md_rows), ""]

  for column in _columns(cells, with_published):
    fractions, labels, grid = fraction_table(cells, checkpoints, column, with_published)
    if not labels:
      continue
    parts += [f"## {column.label} by training fraction (cf. the paper's {column.low_resource_table})",
              ""]
    md_rows = [[label] + [_fmt(c) for c in row] for label, row in zip(labels, grid)]
    parts += [markdown_table(["Model"] + [_percent(f) for f in fractions], md_rows), ""]

  failed = [r for r in rows if r.get("status") == "failed"]
  if failed:
    parts += ["## Failed runs", ""]
    parts += [markdown_table(["Checkpoint", "Task", "Fraction", "Seed", "Error"],
                             [[r["checkpoint"], r["task"], f"{r['fraction']:g}", str(r["seed"]),
                               (r.get("error") or "").replace("|", "/")] for r in failed]), ""]
  if with_published:
    parts += ["Paper rows: Lehman et al. (CHIL 2023). Full-data numbers come from Tables 7, 9 and 10 "
              "(Table 3, then Table 2, where those lack a model); fractions below 100% from "
              "Tables 11-15. The 100% columns of Tables 12, 14 and 15 disagree with Tables 3 and "
              "10 and are not used.", ""]
  return "\n".join(parts)


def _csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator="\n")
  writer.writerow(header)
  writer.writerows(rows)
  return buffer.getvalue()


def _cell_values(cell: Optional[Cell]) -> list[Any]:
  if cell is None:
    return ["", "", ""]
  return [round(cell.mean, 6), "" if cell.std is None else round(cell.std, 6), cell.n]


def render_csvs(rows: Sequence[dict[str, Any]], *, with_published: bool = False,
                main_fraction: Optional[float] = None) -> dict[str, str]:
  """Render main_table.csv, fraction_table.csv and runs.csv as {file name: text}."""
  cells = aggregate(rows)
  checkpoints = _checkpoints(rows)
  done = [r for r in rows if r.get("status") == "done"]
  fraction = main_fraction if main_fraction is not None else max(
      (float(r["fraction"]) for r in done), default=1.0)

  header, grid, labels = main_table(cells, checkpoints, fraction, with_published)
  main_header = ["model", "fraction"]
  for label in header:
    main_header += [f"{label} mean", f"{label} std", f"{label} n"]
  main_rows = []
  for label, row in zip(labels, grid):
    values = [label, fraction]
    for cell in row:
      values += _cell_values(cell)
    main_rows.append(values)

  long_rows = []
  for column in _columns(cells, with_published):
    fractions, labels, grid = fraction_table(cells, checkpoints, column, with_published)
    for label, row in zip(labels, grid):
      for f, cell in zip(fractions, row):
        if cell is not None:
          long_rows.append([column.task, column.metric, label, f] + _cell_values(cell)
                           + [cell.source])

  metrics = sorted({m for r in rows for m in (r.get("test") or {})})
  run_rows = [[r["checkpoint"], r["task"], r["fraction"], r["seed"], r.get("status"),
               r.get("best_step"), r.get("wall_s"), r.get("error") or ""]
              + [(r.get("test") or {}).get(m, "") for m in metrics] for r in rows]
  return {
      "main_table.csv": _csv_text(main_header, main_rows),
      "fraction_table.csv": _csv_text(["task", "metric", "model", "fraction", "mean", "std", "n",
                                       "source"], long_rows),
      "runs.csv": _csv_text(["checkpoint", "task", "fraction", "seed", "status", "best_step",
                             "wall_s", "error"] + [f"test_{m}" for m in metrics], run_rows),
  }


def _plot_task(ax, cells: dict[CellKey, Cell], checkpoints: Sequence[str], task: str,
               with_published: bool) -> None:
  metric = taskinfo.SELECTION_METRIC[task]
  for checkpoint in checkpoints:
    points = sorted((key[3], cell) for key, cell in cells.items()
                    if key[0] == checkpoint and key[1] == task and key[2] == metric)
    if not points:
      continue
    xs = [p[0] for p in points]
    ax.errorbar(xs, [p[1].mean for p in points], yerr=[p[1].std or 0.0 for p in points],
                marker="o", capsize=3, label=checkpoint)

  if with_published:
    for model in published.LOW_RESOURCE_MODELS:
      hits = [(f, published.lookup(model, task, metric, f)) for f in taskinfo.PAPER_FRACTIONS]
      hits = [(f, h) for f, h in hits if h is not None]
      ax.errorbar([f for f, _ in hits], [h.mean for _, h in hits],
                  yerr=[h.std or 0.0 for _, h in hits], linestyle="--", alpha=0.6, capsize=2,
                  label=f"paper: {model}")
    for model, style in zip(published.ICL_MODELS, (":", "-.")):
      hit = published.lookup(model, task, metric, 1.0)
      if hit is not None:
        ax.axhline(hit.mean, linestyle=style, color="gray", alpha=0.8, label=f"paper: {model} (ICL)")

  ax.set_xscale("log")
  ax.set_xlabel("fraction of training data")
  ax.set_ylabel(metric)
  ax.set_title(f"{taskinfo.TASK_LABELS.get(task, task)} ({metric})")
  ax.grid(True, alpha=0.3)
  ax.legend(fontsize=7)


def plot_learning_curves(rows: Sequence[dict[str, Any]], out_dir: str, *,
                         with_published: bool = False) -> list[str]:
  """Write figure4.png (one panel per task) and figure4_<task>.png; return the file names."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  cells = aggregate(rows)
  checkpoints = _checkpoints(rows)
  tasks = [t for t in taskinfo.TASKS if any(key[1] == t for key in cells)]
  if not tasks:
    return []

  written = []
  fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
  for ax, task in zip(axes[0], tasks):
    _plot_task(ax, cells, checkpoints, task, with_published)
  fig.tight_layout()
  fig.savefig(os.path.join(out_dir, "figure4.png"), dpi=110)
  plt.close(fig)
  written.append("figure4.png")

  for task in tasks:
    fig, ax = plt.subplots(figsize=(5, 4))
    _plot_task(ax, cells, checkpoints, task, with_published)
    fig.tight_layout()
    name = f"figure4_{task}.png"
    fig.savefig(os.path.join(out_dir, name), dpi=110)
    plt.close(fig)
    written.append(name)
  return written


def write_report(rows: Sequence[dict[str, Any]], out_dir: str, *, with_published: bool = False,
                 main_fraction: Optional[float] = None) -> list[str]:
  """Write report.md, the CSVs and the plots into the existing directory `out_dir`."""
  files = {"report.md": render_markdown(rows, with_published=with_published,
                                        main_fraction=main_fraction)}
  files.update(render_csvs(rows, with_published=with_published, main_fraction=main_fraction))
  for name, text in files.items():
    with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
      f.write(text)
  return list(files) + plot_learning_curves(rows, out_dir, with_published=with_published)
