"""Tests for the sweep config, the results database and the resumable sweep loop.

The run function is injected, so these tests exercise skipping, failure
recording and recovery from a killed sweep without training a model; the real
trainer runs in tests/test_experiment_finetune_run.py.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from clinical_t5 import cli
from clinical_t5.errors import UserError
from clinical_t5.experiment import results_db
from clinical_t5.experiment import sweep
from clinical_t5.experiment import sweep_config


@pytest.fixture
def workspace(tmp_path):
  """A data dir with task folders, two fake checkpoints and a vocabulary file."""
  for task in ("mednli", "radqa", "clip"):
    (tmp_path / "data" / task).mkdir(parents=True)
  for name in ("ck_a", "ck_b"):
    (tmp_path / name).mkdir()
  (tmp_path / "spiece.model").write_bytes(b"not read by these tests")
  return tmp_path


def _config(**overrides):
  config = {
      "data_dir": "data", "tasks": ["mednli"], "fractions": [0.25, 1.0], "seeds": [1, 2],
      "train_steps": 10,
      "checkpoints": [{"name": "a", "path": "ck_a", "vocab": "spiece.model"},
                      {"name": "b", "path": "ck_b", "vocab": "spiece.model"}],
  }
  config.update(overrides)
  return config


def _write(workspace, config, name="sweep.json"):
  path = workspace / name
  path.write_text(json.dumps(config))
  return str(path)


def _fake_outcome(spec):
  score = 0.5 + 0.4 * spec.key.fraction + 0.01 * spec.key.seed
  return sweep.RunOutcome(validation={"accuracy": score}, test={"accuracy": score - 0.02},
                          best_step=10, selection_metric="accuracy")


def test_config_toml_and_json_agree(workspace):
  (workspace / "sweep.toml").write_text(textwrap.dedent("""\
      data_dir = "data"
      tasks = ["mednli"]
      fractions = [0.25, 1.0]
      seeds = [1, 2]
      train_steps = 10
      [[checkpoints]]
      name = "a"
      path = "ck_a"
      vocab = "spiece.model"
      [[checkpoints]]
      name = "b"
      path = "ck_b"
      vocab = "spiece.model"
      """))
  from_toml = sweep_config.load_sweep_config(str(workspace / "sweep.toml"))
  from_json = sweep_config.load_sweep_config(_write(workspace, _config()))
  assert from_toml.num_runs == from_json.num_runs == 8
  assert from_toml.checkpoints == from_json.checkpoints
  assert from_toml.checkpoints[0].path == str(workspace / "ck_a")
  assert from_toml.eval_period == 10


@pytest.mark.parametrize("overrides, message", [
    ({"tasks": ["mednli", "n2c2"]}, "unknown task 'n2c2'"),
    ({"fractions": [0.0]}, "fraction 0.0 is outside (0, 1]"),
    ({"fractions": [1.5]}, "fraction 1.5 is outside (0, 1]"),
    ({"fractions": [-0.1]}, "fraction -0.1 is outside (0, 1]"),
    ({"checkpoints": [{"name": "a", "path": "missing", "vocab": "spiece.model"}]},
     "checkpoint directory"),
    ({"checkpoints": [{"name": "h", "hf": "ck_a"}]}, "not a Hugging Face model directory"),
    ({"checkpoints": [{"name": "a", "path": "ck_a"}]}, "'vocab'"),
    ({"seeds": [1, 1]}, "lists a seed twice"),
    ({"fractions": [0.5]}, "fraction 0.5 has no registered task subset"),
    ({"data_dir": "nowhere"}, "has no data"),
    ({"learning_rate": 1e-4}, "unknown keys ['learning_rate']"),
    ({"train_steps": 0}, "'train_steps' must be a positive integer"),
])
def test_config_rejects(workspace, overrides, message):
  with pytest.raises(UserError) as info:
    sweep_config.load_sweep_config(_write(workspace, _config(**overrides)))
  assert message in str(info.value)
  assert "\n" not in str(info.value)


def test_config_bad_syntax(workspace):
  (workspace / "bad.toml").write_text("tasks = [")
  with pytest.raises(UserError, match="not valid TOML"):
    sweep_config.load_sweep_config(str(workspace / "bad.toml"))


@pytest.mark.parametrize("overrides", [{"tasks": ["bogus"]}, {"fractions": [2.0]},
                                       {"checkpoints": [{"name": "x", "path": "gone",
                                                         "vocab": "spiece.model"}]}])
def test_cli_bad_config_exits_2_before_training(workspace, overrides, capsys):
  path = _write(workspace, _config(**overrides))
  out = workspace / "out"
  assert cli.main(["experiment", "run", path, "--out", str(out)]) == 2
  err = capsys.readouterr().err
  assert len(err.strip().splitlines()) == 1
  assert not out.exists()


def test_cli_dry_run_lists_runs(workspace, capsys):
  path = _write(workspace, _config())
  assert cli.main(["experiment", "run", path, "--out", str(workspace / "o"), "--dry-run"]) == 0
  out = capsys.readouterr().out
  assert "a/mednli/frac0.25/seed1" in out
  assert "8 runs; config is valid" in out


def test_sweep_runs_all_then_skips(workspace):
  config = sweep_config.load_sweep_config(_write(workspace, _config()))
  out = str(workspace / "out")
  calls = []

  def run_fn(spec):
    calls.append(spec.key)
    assert os.path.isdir(spec.run_dir)
    return _fake_outcome(spec)

  summary = sweep.run_sweep(config, out, run_fn=run_fn)
  assert (summary.done, summary.skipped, summary.failed) == (8, 0, 0)
  assert len(set(calls)) == 8
  assert calls[0] == results_db.RunKey("a", "mednli", 0.25, 1)

  calls.clear()
  summary = sweep.run_sweep(config, out, run_fn=run_fn)
  assert (summary.done, summary.skipped) == (0, 8)
  assert not calls

  with results_db.ResultsDB(os.path.join(out, sweep.DB_NAME)) as db:
    rows = db.rows()
  assert len(rows) == 8
  assert all(r["status"] == "done" for r in rows)
  assert rows[0]["test"]["accuracy"] == pytest.approx(0.5 + 0.1 + 0.01 - 0.02)


def test_failed_run_recorded_and_sweep_continues(workspace):
  config = sweep_config.load_sweep_config(_write(workspace, _config()))
  out = str(workspace / "out")
  bad = results_db.RunKey("a", "mednli", 1.0, 2)

  def flaky(spec):
    if spec.key == bad:
      raise RuntimeError("device out of memory\nsecond line")
    return _fake_outcome(spec)

  summary = sweep.run_sweep(config, out, run_fn=flaky)
  assert (summary.done, summary.failed) == (7, 1)
  with results_db.ResultsDB(os.path.join(out, sweep.DB_NAME)) as db:
    failed = db.rows(status="failed")
  assert len(failed) == 1
  assert failed[0]["error"] == "RuntimeError: device out of memory"
  assert os.path.isfile(os.path.join(failed[0]["run_dir"], "error.txt"))

  # Without retrying, the failed run stays failed; with retrying it is redone.
  summary = sweep.run_sweep(config, out, run_fn=flaky, retry_failed=False)
  assert (summary.done, summary.skipped) == (0, 8)
  summary = sweep.run_sweep(config, out, run_fn=_fake_outcome)
  assert (summary.done, summary.skipped) == (1, 7)
  with results_db.ResultsDB(os.path.join(out, sweep.DB_NAME)) as db:
    assert {r["status"] for r in db.rows()} == {"done"}
    attempts = {(r["checkpoint"], r["fraction"], r["seed"]): r["attempt"] for r in db.rows()}
  assert attempts[("a", 1.0, 2)] == 2
  assert attempts[("a", 1.0, 1)] == 1


_KILLED_SWEEP = """
import os, signal, sys
from clinical_t5.experiment import sweep, sweep_config
config = sweep_config.load_sweep_config(sys.argv[1])
finished = 0
def run_fn(spec):
  global finished
  if finished == 3:
    # Leave a partial checkpoint behind, then die like `kill -9`.
    with open(os.path.join(spec.run_dir, "partial_checkpoint"), "w") as f:
      f.write("half")
    os.kill(os.getpid(), signal.SIGKILL)
  finished += 1
  return sweep.RunOutcome({"accuracy": 0.25}, {"accuracy": 0.25}, 1, "accuracy")
sweep.run_sweep(config, sys.argv[2], run_fn=run_fn)
"""


def test_killed_sweep_resumes_cleanly(workspace):
  path = _write(workspace, _config())
  out = str(workspace / "out")
  proc = subprocess.run([sys.executable, "-c", _KILLED_SWEEP, path, out],
                        capture_output=True, timeout=120, check=False)
  assert proc.returncode == -9

  with results_db.ResultsDB(os.path.join(out, sweep.DB_NAME)) as db:
    statuses = [r["status"] for r in db.rows()]
  assert statuses == ["done"] * 3 + ["running"]
  killed_dir = os.path.join(out, "runs", "a", "mednli", "frac1", "seed2")
  assert os.path.isfile(os.path.join(killed_dir, "partial_checkpoint"))

  seen_partial = []

  def run_fn(spec):
    seen_partial.append(os.path.exists(os.path.join(spec.run_dir, "partial_checkpoint")))
    return _fake_outcome(spec)

  config = sweep_config.load_sweep_config(path)
  summary = sweep.run_sweep(config, out, run_fn=run_fn)
  assert (summary.done, summary.skipped, summary.redone_after_kill) == (5, 3, 1)
  assert seen_partial == [False] * 5
  with results_db.ResultsDB(os.path.join(out, sweep.DB_NAME)) as db:
    assert [r["status"] for r in db.rows()] == ["done"] * 8


def test_second_sweep_on_same_dir_rejected(workspace):
  config = sweep_config.load_sweep_config(_write(workspace, _config()))
  out = str(workspace / "out")

  def nested(spec):
    with pytest.raises(UserError, match="another sweep is running"):
      sweep.run_sweep(config, out, run_fn=_fake_outcome)
    return _fake_outcome(spec)

  config_one = sweep_config.load_sweep_config(
      _write(workspace, _config(seeds=[1], fractions=[1.0], checkpoints=_config()["checkpoints"][:1]),
             name="one.json"))
  summary = sweep.run_sweep(config_one, out, run_fn=nested)
  assert summary.done == 1


def test_hf_checkpoints_imported_once(workspace):
  hf = workspace / "hf"
  hf.mkdir()
  (hf / "config.json").write_text("{}")
  (hf / "spiece.model").write_bytes(b"x")
  config = sweep_config.load_sweep_config(_write(workspace, _config(
      checkpoints=[{"name": "t5", "hf": "hf"}], seeds=[1], fractions=[1.0])))
  imports = []

  def import_fn(src, dst):
    imports.append(src)
    os.makedirs(dst)

  inits = []

  def run_fn(spec):
    inits.append(spec.init_checkpoint)
    return _fake_outcome(spec)

  out = str(workspace / "out")
  sweep.run_sweep(config, out, run_fn=run_fn, import_fn=import_fn)
  sweep.run_sweep(config, out, run_fn=run_fn, import_fn=import_fn)
  assert imports == [str(hf)]
  assert inits == [os.path.join(out, "imported", "t5")]
  assert config.checkpoints[0].vocab == str(hf / "spiece.model")
