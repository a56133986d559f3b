"""`clinical-t5 experiment`: run a finetuning sweep and show its state.

  clinical-t5 experiment run sweep.toml --out sweeps/demo
    validates the whole config first (exit 2 on an unknown task, a fraction
    outside (0, 1] or a missing checkpoint), runs every unfinished run, then
    writes the report to sweeps/demo/report/
  clinical-t5 experiment status sweeps/demo
    one line per run: checkpoint, task, fraction, seed, status, test metrics

The config format is described in `clinical_t5/experiment/sweep_config.py`.
"""

import argparse
import os

from clinical_t5 import fileio
from clinical_t5.errors import UserError
from clinical_t5.experiment import report
from clinical_t5.experiment import results_db
from clinical_t5.experiment import sweep
from clinical_t5.experiment import sweep_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
  sub = parser.add_subparsers(dest="action", required=True, metavar="{run,status}")

  run_parser = sub.add_parser("run", help="run every unfinished run of a sweep config")
  run_parser.add_argument("config", metavar="CONFIG", help="sweep config file (.toml or .json)")
  run_parser.add_argument("--out", default=None,
                          help="sweep output directory (default: the config's out_dir)")
  run_parser.add_argument("--no-retry-failed", action="store_true",
                          help="skip runs that failed in an earlier sweep instead of redoing them")
  run_parser.add_argument("--no-report", action="store_true",
                          help="do not write OUT/report/ when the sweep ends")
  run_parser.add_argument("--with-published", action="store_true",
                          help="put the paper's published numbers beside ours in the report")
  run_parser.add_argument("--dry-run", action="store_true",
                          help="validate the config and list the runs without training")

  status_parser = sub.add_parser("status", help="list the runs of a sweep and their state")
  status_parser.add_argument("out", metavar="OUT", help="sweep output directory")


def _write_report(out_dir: str, with_published: bool) -> str:
  target = os.path.join(out_dir, "report")
  with results_db.ResultsDB(os.path.join(out_dir, sweep.DB_NAME)) as db:
    rows = db.rows()
  with fileio.atomic_output_dir(target, overwrite=True, marker="report.md", stage="report") as tmp:
    report.write_report(rows, tmp, with_published=with_published)
  return target


def _run(args: argparse.Namespace) -> int:
  config = sweep_config.load_sweep_config(args.config)
  out_dir = args.out or config.out_dir
  if out_dir is None:
    raise UserError(f"{args.config}: no output directory; pass --out DIR or set 'out_dir'")

  if args.dry_run:
    for key in sweep.iter_keys(config):
      print(key.slug)
    print(f"{config.num_runs} runs; config is valid")
    return 0

  # Imported only now, so validation errors never wait for JAX and TensorFlow.
  from clinical_t5.experiment import finetune_run  # pylint: disable=g-import-not-at-top
  finetune_run.check_available(config)

  print(f"sweep: {config.num_runs} runs into {out_dir}")
  summary = sweep.run_sweep(config, out_dir, run_fn=finetune_run.finetune_and_test,
                            import_fn=finetune_run.import_hf_checkpoint,
                            retry_failed=not args.no_retry_failed)
  print(f"sweep: {summary.done} runs done now, {summary.skipped} skipped as finished earlier, "
        f"{summary.failed} failed, {summary.redone_after_kill} redone after an interrupted sweep")
  if not args.no_report:
    print(f"report: {_write_report(out_dir, args.with_published)}")
  if summary.failed:
    print(f"sweep: {summary.failed} runs failed; see `clinical-t5 experiment status {out_dir}`")
    return 1
  return 0


def _status(args: argparse.Namespace) -> int:
  db_path = os.path.join(args.out, sweep.DB_NAME)
  if not os.path.isfile(db_path):
    raise UserError(f"no sweep results at {db_path}; pass the --out directory of a sweep")
  with results_db.ResultsDB(db_path) as db:
    rows = db.rows()
  for row in rows:
    metrics = " ".join(f"{k}={v:.4f}" for k, v in sorted(row["test"].items())
                       if isinstance(v, (int, float)))
    extra = row.get("error") or metrics
    print(f"{row['checkpoint']}\t{row['task']}\t{row['fraction']:g}\tseed {row['seed']}\t"
          f"{row['status']}\t{extra}")
  print(f"{len(rows)} runs recorded")
  return 0


def run(args: argparse.Namespace) -> int:
  if args.action == "run":
    return _run(args)
  return _status(args)
