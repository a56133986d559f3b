"""`clinical-t5 report`: paper-style tables and plots from a sweep's results.

  clinical-t5 report sweeps/demo --out sweeps/demo/report --with-published
  # writes report.md, main_table.csv, fraction_table.csv, runs.csv, figure4*.png
  # and prints report.md

SWEEP is a sweep's output directory (holding results.sqlite) or the SQLite file
itself. Without SWEEP, `--with-published` writes the published numbers of Lehman et al.
(CHIL 2023) alone.
"""

import argparse
import os

from clinical_t5 import fileio
from clinical_t5.errors import UserError
from clinical_t5.experiment import report
from clinical_t5.experiment import results_db

DB_NAME = "results.sqlite"


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("sweep", nargs="?", default=None, metavar="SWEEP",
                      help=f"a sweep output directory (with {DB_NAME}) or the SQLite file")
  parser.add_argument("--out", required=True, help="directory to write the report into")
  parser.add_argument("--with-published", action="store_true",
                      help="put the paper's published numbers beside ours")
  parser.add_argument("--main-fraction", type=float, default=None,
                      help="training fraction of the main table (default: the largest in the sweep)")
  parser.add_argument("--overwrite", action="store_true", help="replace an existing --out directory")


def resolve_db(path: str) -> str:
  """Return the results database path for a sweep directory or a database file."""
  db = os.path.join(path, DB_NAME) if os.path.isdir(path) else path
  if not os.path.isfile(db):
    raise UserError(f"no sweep results at {db}; pass the --out directory of "
                    "`clinical-t5 experiment run` or its results.sqlite")
  return db


def run(args: argparse.Namespace) -> int:
  if args.sweep is None and not args.with_published:
    raise UserError("nothing to report: pass a SWEEP directory, --with-published, or both")
  if args.main_fraction is not None and not 0.0 < args.main_fraction <= 1.0:
    raise UserError(f"--main-fraction {args.main_fraction} is outside (0, 1]")

  rows = []
  if args.sweep is not None:
    with results_db.ResultsDB(resolve_db(args.sweep)) as db:
      rows = db.rows()

  with fileio.atomic_output_dir(args.out, overwrite=args.overwrite, marker="report.md",
                                stage="report") as tmp:
    names = report.write_report(rows, tmp, with_published=args.with_published,
                                main_fraction=args.main_fraction)
    with open(os.path.join(tmp, "report.md"), encoding="utf-8") as f:
      text = f.read()
  print(text)
  print(f"wrote {', '.join(names)} to {args.out}")
  return 0
