"""Run a finetuning sweep: checkpoints × tasks × fractions × seeds, resumable.

  config = sweep_config.load_sweep_config("sweep.toml")
  summary = run_sweep(config, "sweeps/demo", run_fn=finetune_run.finetune_and_test)
  # sweeps/demo/results.sqlite   one row per run (results_db.py)
  # sweeps/demo/runs/<checkpoint>/<task>/frac<f>/seed<s>/   the run's MODEL_DIR
  # sweeps/demo/imported/<name>/ Hugging Face checkpoints converted once

What happens to each run on a (re)start:

  done     skipped
  running  left by a killed sweep: its run directory is deleted and it is redone
  failed   redone, unless retry_failed=False
  (none)   run; a stale run directory from a kill before the first database
           write is deleted first

A run that raises `Exception` is recorded as failed (error type and first
message line; the traceback goes to RUN_DIR/error.txt) and the sweep moves on.
`KeyboardInterrupt` stops the sweep and leaves the row `running`, so the next
start redoes it. A lock file keeps two sweeps from sharing one output directory.
"""

import dataclasses
import fcntl
import os
import shutil
import time
import traceback
from typing import Callable, Iterator, Optional

from absl import logging

from clinical_t5.errors import UserError
from clinical_t5.experiment import results_db
from clinical_t5.experiment import sweep_config as config_lib

DB_NAME = "results.sqlite"


@dataclasses.dataclass(frozen=True)
class RunSpec:
  """Everything one finetuning run needs."""
  key: results_db.RunKey
  checkpoint: config_lib.CheckpointSpec
  # The clinical-t5 checkpoint to start from (an imported one for `hf` entries).
  init_checkpoint: str
  run_dir: str
  config: config_lib.SweepConfig


@dataclasses.dataclass(frozen=True)
class RunOutcome:
  """Metrics of one finished run: the selected validation step and the test split."""
  validation: dict[str, float]
  test: dict[str, float]
  best_step: Optional[int]
  selection_metric: str


RunFunction = Callable[[RunSpec], RunOutcome]
ImportFunction = Callable[[str, str], None]


@dataclasses.dataclass
class SweepSummary:
  """Counts of what one `run_sweep` call did."""
  total: int = 0
  skipped: int = 0
  done: int = 0
  failed: int = 0
  redone_after_kill: int = 0


def iter_keys(config: config_lib.SweepConfig) -> Iterator[results_db.RunKey]:
  """Yield the run keys in sweep order: checkpoint, task, fraction, seed."""
  for checkpoint in config.checkpoints:
    for task in config.tasks:
      for fraction in config.fractions:
        for seed in config.seeds:
          yield results_db.RunKey(checkpoint.name, task, fraction, seed)


class _SweepLock:
  """An exclusive flock on OUT/.sweep.lock; released when the process exits, even on a kill."""

  def __init__(self, out_dir: str):
    self.path = os.path.join(out_dir, ".sweep.lock")
    self._file = None

  def __enter__(self) -> "_SweepLock":
    self._file = open(self.path, "a+", encoding="utf-8")
    try:
      fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      self._file.close()
      raise UserError(f"another sweep is running in {os.path.dirname(self.path)}; wait for it "
                      "or choose another output directory") from None
    return self

  def __exit__(self, *exc) -> None:
    fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
    self._file.close()


def _error_line(error: BaseException) -> str:
  # NOTE: only the type and the first line (max 300 characters) go into the
  # database: our code keeps note text out of messages, and this bounds the
  # damage when a library quotes its input.
  text = str(error).splitlines()[0][:300] if str(error) else ""
  return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _import_checkpoints(config: config_lib.SweepConfig, out_dir: str,
                        import_fn: Optional[ImportFunction]) -> dict[str, str]:
  """Return {checkpoint name: clinical-t5 checkpoint path}, importing `hf` entries once."""
  paths = {}
  for spec in config.checkpoints:
    if spec.path is not None:
      paths[spec.name] = spec.path
      continue
    target = os.path.join(out_dir, "imported", spec.name)
    if not os.path.isdir(target):
      if import_fn is None:
        raise UserError(f"checkpoint {spec.name!r} is a Hugging Face directory but no importer "
                        "is available")
      logging.info("importing Hugging Face checkpoint %s into %s", spec.hf, target)
      os.makedirs(os.path.dirname(target), exist_ok=True)
      import_fn(spec.hf, target)
    paths[spec.name] = target
  return paths


def _execute(db: results_db.ResultsDB, spec: RunSpec, run_fn: RunFunction,
             summary: SweepSummary) -> None:
  if os.path.exists(spec.run_dir):
    shutil.rmtree(spec.run_dir)
  os.makedirs(spec.run_dir)
  attempt = db.mark_running(spec.key, spec.run_dir)
  logging.info("run %s starts (attempt %d)", spec.key.slug, attempt)
  start = time.monotonic()
  try:
    outcome = run_fn(spec)
  except Exception as e:  # pylint: disable=broad-except
    wall_s = time.monotonic() - start
    with open(os.path.join(spec.run_dir, "error.txt"), "w", encoding="utf-8") as f:
      f.write(traceback.format_exc())
    db.mark_failed(spec.key, error=_error_line(e), wall_s=wall_s)
    summary.failed += 1
    logging.error("run %s failed after %.0f s: %s (traceback in %s/error.txt)",
                  spec.key.slug, wall_s, _error_line(e), spec.run_dir)
    return
  wall_s = time.monotonic() - start
  db.mark_done(spec.key, validation=outcome.validation, test=outcome.test,
               best_step=outcome.best_step, selection_metric=outcome.selection_metric,
               wall_s=wall_s)
  summary.done += 1
  logging.info("run %s done in %.0f s: test %s", spec.key.slug, wall_s, outcome.test)


def run_sweep(config: config_lib.SweepConfig, out_dir: str, *, run_fn: RunFunction,
              import_fn: Optional[ImportFunction] = None,
              retry_failed: bool = True) -> SweepSummary:
  """Run every unfinished run of `config` into `out_dir`; see the module docstring."""
  os.makedirs(out_dir, exist_ok=True)
  summary = SweepSummary(total=config.num_runs)
  with _SweepLock(out_dir), results_db.ResultsDB(os.path.join(out_dir, DB_NAME)) as db:
    checkpoint_paths = _import_checkpoints(config, out_dir, import_fn)
    specs = {c.name: c for c in config.checkpoints}
    for key in iter_keys(config):
      status = db.status(key)
      if status == "done" or (status == "failed" and not retry_failed):
        summary.skipped += 1
        logging.info("run %s skipped (%s)", key.slug, status)
        continue
      if status == "running":
        summary.redone_after_kill += 1
        logging.warning("run %s was left unfinished by an earlier sweep; redoing it", key.slug)
      spec = RunSpec(key=key, checkpoint=specs[key.checkpoint],
                     init_checkpoint=checkpoint_paths[key.checkpoint],
                     run_dir=os.path.join(out_dir, "runs", key.slug), config=config)
      _execute(db, spec, run_fn, summary)
  return summary
