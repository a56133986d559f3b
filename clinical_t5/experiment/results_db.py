"""The sweep's results database: one SQLite row per (checkpoint, task, fraction, seed).

A run's row moves through three states:

  running  written before training starts; a row still `running` when a new
           sweep starts belongs to a process that was killed, and is redone
  done     validation metrics of the selected step and test metrics, as JSON
  failed   the error type and first message line; the sweep moved on

  db = ResultsDB("sweep/results.sqlite")
  key = RunKey("ours-tiny", "mednli", 0.25, 1)
  db.mark_running(key, run_dir="sweep/runs/...")
  db.mark_done(key, validation={"accuracy": 0.61}, test={"accuracy": 0.58},
               best_step=200, selection_metric="accuracy", wall_s=41.0)
  db.status(key)  # -> "done"

Every write is its own transaction, so a killed process leaves the database
consistent: at worst one row stays `running`.
"""

import dataclasses
import datetime
import json
import sqlite3
from typing import Any, Optional

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  checkpoint TEXT NOT NULL,
  task TEXT NOT NULL,
  fraction REAL NOT NULL,
  seed INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
  attempt INTEGER NOT NULL DEFAULT 1,
  started_at TEXT,
  finished_at TEXT,
  wall_s REAL,
  best_step INTEGER,
  selection_metric TEXT,
  validation_json TEXT,
  test_json TEXT,
  error TEXT,
  run_dir TEXT,
  PRIMARY KEY (checkpoint, task, fraction, seed)
)
"""


@dataclasses.dataclass(frozen=True, order=True)
class RunKey:
  """The identity of one finetuning run in a sweep."""
  checkpoint: str
  task: str
  fraction: float
  seed: int

  def __post_init__(self):
    if not 0.0 < self.fraction <= 1.0:
      raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")

  @property
  def slug(self) -> str:
    """A directory name for the run, e.g. 'ours-tiny/mednli/frac0.25/seed1'."""
    return f"{self.checkpoint}/{self.task}/frac{self.fraction:g}/seed{self.seed}"


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class ResultsDB:
  """A thin wrapper around one SQLite file; safe to reopen after a crash."""

  def __init__(self, path: str):
    self.path = path
    # NOTE: isolation_level=None gives autocommit; each method below opens an
    # explicit transaction so a kill between statements cannot half-write a row.
    self._conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    self._conn.row_factory = sqlite3.Row
    self._conn.execute(_SCHEMA)

  def close(self) -> None:
    self._conn.close()

  def __enter__(self) -> "ResultsDB":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def _key_args(self, key: RunKey) -> tuple:
    return (key.checkpoint, key.task, float(key.fraction), int(key.seed))

  def status(self, key: RunKey) -> Optional[str]:
    row = self._conn.execute(
        "SELECT status FROM runs WHERE checkpoint=? AND task=? AND fraction=? AND seed=?",
        self._key_args(key)).fetchone()
    return None if row is None else row["status"]

  def mark_running(self, key: RunKey, run_dir: str) -> int:
    """Record that `key` starts now; return its attempt number (1 for a new run)."""
    with self._conn:
      self._conn.execute("BEGIN IMMEDIATE")
      row = self._conn.execute(
          "SELECT attempt FROM runs WHERE checkpoint=? AND task=? AND fraction=? AND seed=?",
          self._key_args(key)).fetchone()
      attempt = 1 if row is None else row["attempt"] + 1
      self._conn.execute(
          "INSERT OR REPLACE INTO runs (checkpoint, task, fraction, seed, status, attempt, "
          "started_at, run_dir) VALUES (?, ?, ?, ?, 'running', ?, ?, ?)",
          self._key_args(key) + (attempt, _now(), run_dir))
    return attempt

  def mark_done(self, key: RunKey, *, validation: dict[str, float], test: dict[str, float],
                best_step: Optional[int], selection_metric: str, wall_s: float) -> None:
    with self._conn:
      self._conn.execute("BEGIN IMMEDIATE")
      self._conn.execute(
          "UPDATE runs SET status='done', finished_at=?, wall_s=?, best_step=?, "
          "selection_metric=?, validation_json=?, test_json=?, error=NULL "
          "WHERE checkpoint=? AND task=? AND fraction=? AND seed=?",
          (_now(), wall_s, best_step, selection_metric, json.dumps(validation), json.dumps(test))
          + self._key_args(key))

  def mark_failed(self, key: RunKey, *, error: str, wall_s: float) -> None:
    with self._conn:
      self._conn.execute("BEGIN IMMEDIATE")
      self._conn.execute(
          "UPDATE runs SET status='failed', finished_at=?, wall_s=?, error=? "
          "WHERE checkpoint=? AND task=? AND fraction=? AND seed=?",
          (_now(), wall_s, error) + self._key_args(key))

  def rows(self, status: Optional[str] = None) -> list[dict[str, Any]]:
    """Return every run (or those with `status`) as dicts with parsed `validation`/`test`."""
    query = "SELECT * FROM runs"
    params: tuple = ()
    if status is not None:
      query += " WHERE status=?"
      params = (status,)
    query += " ORDER BY checkpoint, task, fraction, seed"
    result = []
    for row in self._conn.execute(query, params).fetchall():
      record = dict(row)
      record["validation"] = json.loads(record.pop("validation_json") or "{}")
      record["test"] = json.loads(record.pop("test_json") or "{}")
      result.append(record)
    return result
