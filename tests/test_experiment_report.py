"""Tests for clinical_t5.experiment.report and `clinical-t5 report` on hand-made result rows."""

import csv
import io
import os

import pytest

from clinical_t5 import cli
from clinical_t5.experiment import report
from clinical_t5.experiment import results_db


def _row(checkpoint, task, fraction, seed, test, status="done", error=None):
  return {"checkpoint": checkpoint, "task": task, "fraction": fraction, "seed": seed,
          "status": status, "test": test, "error": error, "best_step": 10, "wall_s": 1.0}


ROWS = [
    _row("a", "mednli", 1.0, 1, {"accuracy": 0.80, "macro_f1": 0.70}),
    _row("a", "mednli", 1.0, 2, {"accuracy": 0.90, "macro_f1": 0.72}),
    _row("a", "mednli", 0.25, 1, {"accuracy": 0.60, "macro_f1": 0.50}),
    _row("a", "mednli", 0.25, 2, {"accuracy": 0.70, "macro_f1": 0.52}),
    _row("b", "mednli", 1.0, 1, {"accuracy": 0.50, "macro_f1": 0.40}),
    _row("b", "mednli", 1.0, 2, {}, status="failed", error="RuntimeError: out of memory"),
    _row("b", "mednli", 0.25, 1, {"accuracy": 0.45, "macro_f1": 0.30}),
    _row("b", "mednli", 0.25, 2, {}, status="running"),
]


def test_aggregate_mean_and_sample_std():
  cells = report.aggregate(ROWS)
  cell = cells[("a", "mednli", "accuracy", 1.0)]
  assert cell.mean == pytest.approx(0.85)
  assert cell.std == pytest.approx(0.0707107, rel=1e-5)   # stdev([0.8, 0.9])
  assert cell.n == 2
  assert cells[("b", "mednli", "accuracy", 1.0)].std is None
  assert cells[("b", "mednli", "accuracy", 1.0)].n == 1


def test_markdown_tables():
  text = report.render_markdown(ROWS)
  assert "| a | 0.850 ± 0.071 |" in text
  assert "| b | 0.500 (1 seed) |" in text
  assert "MedNLI Acc by training fraction" in text
  assert "| a | 0.650 ± 0.071 | 0.850 ± 0.071 |" in text
  assert "RuntimeError: out of memory" in text
  assert "RadQA" not in text
  assert "6 finished runs, 1 failed, 1 unfinished" in text


def test_markdown_with_published():
  text = report.render_markdown(ROWS, with_published=True)
  assert "| paper: Clinical-T5-Large | 0.872 ± 0.008 | Table 7 |" in text
  assert "paper: GPT-3 (ICL)" in text
  # The fraction table gains the fractions and the five models of Tables 11-15.
  assert "| Model | 1% | 5% | 10% | 25% | 100% |" in text
  assert "| paper: Clinical-T5-Large | 0.581 ± 0.029 |" in text


def test_main_fraction_override():
  text = report.render_markdown(ROWS, main_fraction=0.25)
  assert "training fraction 25%" in text
  assert "| a | 0.650 ± 0.071 |" in text


def test_csv_outputs():
  files = report.render_csvs(ROWS)
  main = list(csv.DictReader(io.StringIO(files["main_table.csv"])))
  assert [r["model"] for r in main] == ["a", "b"]
  assert float(main[0]["MedNLI Acc mean"]) == pytest.approx(0.85)
  long_rows = list(csv.DictReader(io.StringIO(files["fraction_table.csv"])))
  assert {(r["model"], r["metric"], r["fraction"]) for r in long_rows} >= {
      ("a", "accuracy", "0.25"), ("b", "accuracy", "1.0")}
  runs = list(csv.DictReader(io.StringIO(files["runs.csv"])))
  assert len(runs) == len(ROWS)
  assert runs[5]["error"] == "RuntimeError: out of memory"


def test_write_report_files(tmp_path):
  names = report.write_report(ROWS, str(tmp_path), with_published=True)
  for name in ("report.md", "main_table.csv", "fraction_table.csv", "runs.csv", "figure4.png",
               "figure4_mednli.png"):
    assert name in names
    assert (tmp_path / name).stat().st_size > 0
  assert (tmp_path / "figure4.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_report_from_database(tmp_path, capsys):
  db_path = tmp_path / "results.sqlite"
  with results_db.ResultsDB(str(db_path)) as db:
    for row in ROWS:
      key = results_db.RunKey(row["checkpoint"], row["task"], row["fraction"], row["seed"])
      db.mark_running(key, run_dir="unused")
      if row["status"] == "done":
        db.mark_done(key, validation=row["test"], test=row["test"], best_step=10,
                     selection_metric="accuracy", wall_s=1.0)
      elif row["status"] == "failed":
        db.mark_failed(key, error=row["error"], wall_s=1.0)
  out = tmp_path / "report"
  assert cli.main(["report", str(tmp_path), "--out", str(out)]) == 0
  assert "| a | 0.850 ± 0.071 |" in capsys.readouterr().out
  assert os.path.isfile(out / "figure4.png")
  # A second report into the same directory needs --overwrite.
  assert cli.main(["report", str(tmp_path), "--out", str(out)]) == 2
  assert cli.main(["report", str(tmp_path), "--out", str(out), "--overwrite"]) == 0


def test_cli_report_published_only(tmp_path, capsys):
  assert cli.main(["report", "--with-published", "--out", str(tmp_path / "r")]) == 0
  text = capsys.readouterr().out
  assert "paper: BioClinRoBERTa" in text
  assert "RadQA F1 by training fraction" in text


def test_cli_report_missing_sweep_exits_2(tmp_path, capsys):
  assert cli.main(["report", str(tmp_path / "nope"), "--out", str(tmp_path / "r")]) == 2
  assert "no sweep results" in capsys.readouterr().err
