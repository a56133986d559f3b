"""Tests that really start several jax.distributed processes on this machine.

The tests start real processes through `clinical-t5 launch local` and the
worker entry point; tests/test_launch_cli.py runs launch/gpu_slurm.sbatch the
same way under a fake `srun`.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from clinical_t5 import cli
from clinical_t5.launch import worker

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent

# Each process adds its (process index + 1) across processes with a real
# cross-process collective, then prints what it saw as one JSON line.
PSUM_SCRIPT = """\
import json, sys
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

mesh = Mesh(np.array(jax.devices()), ("data",))
local = np.full((jax.local_device_count(),), jax.process_index() + 1.0, np.float32)
global_array = jax.make_array_from_process_local_data(
    NamedSharding(mesh, PartitionSpec("data")), local)                    # [devices]
total = jax.jit(jnp.sum, out_shardings=NamedSharding(mesh, PartitionSpec()))(global_array)
print(json.dumps({"process": jax.process_index(), "processes": jax.process_count(),
                  "local_devices": jax.local_device_count(), "devices": jax.device_count(),
                  "sum": float(total.addressable_data(0)), "argv": sys.argv[1:]}))
"""

FAIL_SCRIPT = """\
import sys, time
import jax
if jax.process_index() == 1:
  sys.exit(3)
time.sleep(120)
print("process 0 was not stopped")
"""


def _result_lines(log: pathlib.Path) -> list[dict]:
  return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def test_local_psum_two_processes(tmp_path, capsys):
  script = tmp_path / "psum.py"
  script.write_text(PSUM_SCRIPT)
  code = cli.main(["launch", "local", "--num-processes", "2", "--cpu-devices-per-process", "2",
                   "--log-dir", str(tmp_path / "logs"), "--timeout-s", "120",
                   "--script", str(script), "--", "--flag='quoted value'", "two words"])
  assert code == 0, capsys.readouterr().err
  results = [_result_lines(tmp_path / "logs" / f"process-{i}.log") for i in range(2)]
  for process_id in range(2):
    log = (tmp_path / "logs" / f"process-{process_id}.log").read_text()
    assert f"initializing jax.distributed: process {process_id} of 2" in log
  assert [r[0]["process"] for r in results] == [0, 1]
  for (result,) in results:
    assert result["processes"] == 2
    assert result["local_devices"] == 2
    assert result["devices"] == 4
    assert result["sum"] == 6.0            # 1 + 1 (process 0) + 2 + 2 (process 1)
    assert result["argv"] == ["--flag='quoted value'", "two words"]


def test_local_failure_stops_the_others(tmp_path, capsys):
  script = tmp_path / "fail.py"
  script.write_text(FAIL_SCRIPT)
  code = cli.main(["launch", "local", "--num-processes", "2", "--cpu-devices-per-process", "1",
                   "--log-dir", str(tmp_path / "logs"), "--timeout-s", "100",
                   "--script", str(script), "--"])
  assert code == 3, capsys.readouterr().err
  assert "not stopped" not in (tmp_path / "logs" / "process-0.log").read_text()


def test_worker_rejects_bad_environment(tmp_path):
  script = tmp_path / "noop.py"
  script.write_text("print('ran')\n")
  env = dict(os.environ, **{worker.ENV_NUM_PROCESSES: "two", worker.ENV_PROCESS_ID: "0",
                            worker.ENV_COORDINATOR: "127.0.0.1:1"})
  result = subprocess.run([sys.executable, "-m", "clinical_t5.launch.worker", "--script",
                           str(script)], env=env, capture_output=True, text=True, check=False)
  assert result.returncode == 2
  assert "CLINICAL_T5_NUM_PROCESSES='two' is not a non-negative integer" in result.stderr
  assert "ran" not in result.stdout


def test_worker_single_process_runs_module(tmp_path):
  (tmp_path / "hello_mod.py").write_text("import sys\nprint('hello', sys.argv[1:])\n")
  env = {k: v for k, v in os.environ.items() if not k.startswith("CLINICAL_T5_")}
  env["PYTHONPATH"] = str(tmp_path)
  result = subprocess.run([sys.executable, "-m", "clinical_t5.launch.worker", "--module",
                           "hello_mod", "--", "a", "b c"], env=env, capture_output=True,
                          text=True, check=False)
  assert result.returncode == 0, result.stderr
  assert "hello ['a', 'b c']" in result.stdout


@pytest.fixture(scope="module")
def tiny_data_env(tmp_path_factory):
  """Tiny corpus + vocabulary (shared with the trainer tests) and a compile cache."""
  import train_testlib  # pylint: disable=g-import-not-at-top
  base = tmp_path_factory.getbasetemp()
  data_env = train_testlib.build_tiny_data(base / "train_tiny_data")
  return train_testlib.subprocess_env(data_env, base / "launch_jax_cache", devices=2)


@pytest.mark.slow
def test_local_two_process_training(tmp_path, tiny_data_env):
  # A real pretraining job: 2 processes x 2 CPU devices, 2 steps, one checkpoint.
  import train_testlib  # pylint: disable=g-import-not-at-top
  model_dir = tmp_path / "model"
  log_dir = tmp_path / "logs"
  argv = [sys.executable, "-m", "clinical_t5.cli", "launch", "local", "--num-processes", "2",
          "--cpu-devices-per-process", "2", "--log-dir", str(log_dir), "--timeout-s", "900", "--",
          f"--gin_file={train_testlib.TINY_PRETRAIN}", f"--gin.MODEL_DIR='{model_dir}'",
          f"--gin.VOCAB_SIZE={train_testlib.VOCAB_SIZE}", "--gin.TRAIN_STEPS=2", "--gin.CHECKPOINT_PERIOD=2",
          "--gin.EVAL_PERIOD=None", "--gin.EVAL_STEPS=1", "--gin.LOG_PERIOD=1"]
  result = subprocess.run(argv, env=tiny_data_env, cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=960, check=False)
  logs = [(log_dir / f"process-{i}.log").read_text() for i in range(2)]
  assert result.returncode == 0, result.stderr + "\n".join(log[-3000:] for log in logs)

  for process_id, log in enumerate(logs):
    assert f"initializing jax.distributed: process {process_id} of 2" in log
  finals = [json.loads([line for line in log.splitlines() if line.startswith("{")][-1])
            for log in logs]
  assert finals[0]["status"] == "completed"
  assert finals[0]["step"] == 2
  assert finals[0] == finals[1]          # both processes computed the same global step

  metrics = [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]
  assert [m["step"] for m in metrics if "loss" in m and "split" not in m] == [1, 2]
  assert (model_dir / "checkpoint_2").is_dir()
