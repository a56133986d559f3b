"""The training loop: exact resume after kill -9 and SIGTERM, NaN stop, init order."""

import os
import random
import signal
import subprocess
import time

import numpy as np
import pytest

import train_testlib

# NOTE: one encoder and one decoder layer keep the XLA compile short; a period of 2
# steps puts the kills both between saves and during asynchronous saves.
FAST = ["BATCH_SIZE=8", "LOG_PERIOD=1", "CHECKPOINT_PERIOD=2", "EVAL_PERIOD=None",
        "DROPOUT_RATE=0.1", "NUM_PARTITIONS=2", "trainer.TrainJob.train_eval=None",
        "model_config.T5Config.num_encoder_layers=1", "model_config.T5Config.num_decoder_layers=1"]
TOTAL_STEPS = 8


@pytest.fixture(scope="module")
def env(tmp_path_factory):
  data_env = train_testlib.build_tiny_data(tmp_path_factory.getbasetemp() / "train_tiny_data")
  cache = train_testlib.enable_compilation_cache()
  return train_testlib.subprocess_env(data_env, cache, devices=4)


def _wait_for_step(proc, model_dir, step, timeout=240):
  deadline = time.time() + timeout
  while time.time() < deadline:
    done = [m["step"] for m in train_testlib.train_lines(model_dir)]
    if done and max(done) >= step:
      return max(done)
    if proc.poll() is not None:
      raise AssertionError(f"training exited with {proc.returncode} before step {step}: "
                           f"{proc.stderr.read()[-3000:]}")
    time.sleep(0.05)
  raise AssertionError(f"step {step} not reached in {timeout} s")


@pytest.mark.slow
def test_kill_and_sigterm_resume_bitwise_equal(env, tmp_path):
  cmd = lambda d: train_testlib.train_command(d, FAST + [f"TRAIN_STEPS={TOTAL_STEPS}"])

  reference = tmp_path / "reference"
  proc = train_testlib.run(cmd(reference), env)
  assert proc.returncode == 0, proc.stderr[-3000:]

  interrupted = tmp_path / "interrupted"
  # NOTE: a seeded draw of the interruption points, so a failure is reproducible.
  kill_steps = sorted(random.Random(0).sample(range(2, TOTAL_STEPS - 1), 2))
  signals = [signal.SIGTERM] + [signal.SIGKILL] * (len(kill_steps) - 1)
  for step, sig in zip(kill_steps, signals):
    proc = subprocess.Popen(cmd(interrupted), env=env, cwd=train_testlib.REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_step(proc, interrupted, step)
    proc.send_signal(sig)
    proc.wait(timeout=120)
    if sig == signal.SIGTERM:
      # A preemption saves the current step and exits with 143.
      assert proc.returncode == 143, proc.stderr.read()[-3000:]
    else:
      assert proc.returncode == -signal.SIGKILL
  proc = train_testlib.run(cmd(interrupted), env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "resuming from" in proc.stderr

  final = f"checkpoint_{TOTAL_STEPS}"
  want = train_testlib.load_state(reference / final)
  got = train_testlib.load_state(interrupted / final)
  for item in ("params", "opt_state"):
    want_leaves = train_testlib.flatten(want[item])
    got_leaves = train_testlib.flatten(got[item])
    assert want_leaves.keys() == got_leaves.keys()
    for key, value in want_leaves.items():
      assert np.array_equal(value, got_leaves[key]), f"{item}{key} differs after resume"
  # The per-step losses of the resumed run repeat the reference ones exactly.
  ref_loss = {m["step"]: m["loss"] for m in train_testlib.train_lines(reference)}
  for line in train_testlib.train_lines(interrupted):
    assert line["loss"] == ref_loss[line["step"]], line


@pytest.fixture()
def inprocess_env(tmp_path_factory, monkeypatch):
  data_env = train_testlib.build_tiny_data(tmp_path_factory.getbasetemp() / "train_tiny_data")
  for key, value in data_env.items():
    monkeypatch.setenv(key, value)
  import clinical_t5_tasks  # pylint: disable=g-import-not-at-top
  clinical_t5_tasks.configure()
  train_testlib.enable_compilation_cache()


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_last_good_checkpoint(inprocess_env, tmp_path):
  from clinical_t5.train import api, checkpoints, trainer  # pylint: disable=g-import-not-at-top
  model_dir = tmp_path / "m"
  bindings = [f"MODEL_DIR = '{model_dir}'", f"VOCAB_SIZE = {train_testlib.VOCAB_SIZE}",
              "TRAIN_STEPS = 4", "CHECKPOINT_PERIOD = 1", "BATCH_SIZE = 8", "LOG_PERIOD = 1",
              "EVAL_PERIOD = None", "OPTIMIZER_NAME = 'adamw'", "LR_SCHEDULE = 'constant'",
              # NOTE: a 1e30 step size makes the second forward pass overflow.
              "LEARNING_RATE = 1e30", "trainer.TrainJob.train_eval = None",
              "model_config.T5Config.num_encoder_layers = 1",
              "model_config.T5Config.num_decoder_layers = 1"]
  with pytest.raises(trainer.TrainingDivergedError, match=r"loss is (nan|inf) at step 2") as err:
    api.run_train([train_testlib.TINY_PRETRAIN], bindings)
  assert "last good checkpoint" in str(err.value) and "checkpoint_1" in str(err.value)
  assert checkpoints.is_complete(str(model_dir / "checkpoint_1"))
  assert not (model_dir / "checkpoint_2").exists()
  assert [m["step"] for m in train_testlib.train_lines(model_dir)] == [1]
