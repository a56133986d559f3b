"""Two local processes with jax.distributed (CPU, coordinator on 127.0.0.1): train, save, resume."""

import socket
import subprocess

import pytest

import train_testlib

FAST = ["BATCH_SIZE=8", "LOG_PERIOD=1", "CHECKPOINT_PERIOD=3", "EVAL_PERIOD=None",
        "trainer.TrainJob.train_eval=None", "model_config.T5Config.num_encoder_layers=1",
        "model_config.T5Config.num_decoder_layers=1"]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _run_two_processes(model_dir, steps, env):
  port = _free_port()
  procs = []
  for index in range(2):
    cmd = train_testlib.train_command(model_dir, FAST + [f"TRAIN_STEPS={steps}"])
    cmd += [f"--coordinator_address=127.0.0.1:{port}", "--process_count=2",
            f"--process_index={index}"]
    procs.append(subprocess.Popen(cmd, env=env, cwd=train_testlib.REPO, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE))
  outputs = [p.communicate(timeout=600) for p in procs]
  for proc, (_, err) in zip(procs, outputs):
    assert proc.returncode == 0, err[-4000:]
  return [err for _, err in outputs]


@pytest.mark.slow
def test_two_processes_train_save_resume(tmp_path_factory, tmp_path):
  data_env = train_testlib.build_tiny_data(tmp_path_factory.getbasetemp() / "train_tiny_data")
  cache = train_testlib.enable_compilation_cache()
  env = train_testlib.subprocess_env(data_env, cache, devices=2)
  # NOTE: CPU collectives across processes need gloo.
  env["JAX_CPU_COLLECTIVES_IMPLEMENTATION"] = "gloo"
  model_dir = tmp_path / "m"

  logs = _run_two_processes(model_dir, 3, env)
  assert all("process 1 of 2" in log or "process 0 of 2" in log for log in logs)
  assert (model_dir / "checkpoint_3" / "commit_success.txt").exists()
  data_state = train_testlib.load_json_item(model_dir / "checkpoint_3", "data_iterator")
  assert data_state["num_shards"] == 2 and data_state["batches"] == 3

  logs = _run_two_processes(model_dir, 5, env)
  assert all("resuming from" in log for log in logs)
  assert (model_dir / "checkpoint_5" / "commit_success.txt").exists()
  steps = [m["step"] for m in train_testlib.train_lines(model_dir)]
  assert steps == [1, 2, 3, 4, 5]   # only process 0 writes metrics
