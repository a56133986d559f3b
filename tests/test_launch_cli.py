"""Tests of `clinical-t5 launch`: dry-run output against golden files, and bad input.

Golden files live in tests/golden/launch/. After an intended change of the
printed commands, regenerate them with
  UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_launch_cli.py
and review the diff.
"""

import difflib
import json
import os
import pathlib
import socket
import stat
import subprocess
import sys

import pytest

from clinical_t5 import cli
from clinical_t5.launch import slurm
from test_launch_local import PSUM_SCRIPT  # pylint: disable=g-bad-import-order

GOLDEN_DIR = pathlib.Path(__file__).parent / "golden" / "launch"
REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent

PRETRAIN_GIN = """\
from __gin__ import dynamic_registration
include 'gin/models/base.gin'
TRAIN_STEPS = 310000
BATCH_SIZE = 256
"""
TRAINER_ARGS = [
    "--gin_file=gin/runs/pretrain.gin",
    "--gin.MODEL_DIR='gs://my-bucket/runs/clinical-t5-base'",
    "--gin.MIXTURE_OR_TASK_NAME='mimic_span_corruption'",
]


def check_golden(name: str, text: str) -> None:
  path = GOLDEN_DIR / name
  if os.environ.get("UPDATE_GOLDEN") == "1":
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
  expected = path.read_text()
  diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True),
                                      "golden/" + name, "output"))
  assert text == expected, f"output differs from {name}:\n{diff}"


@pytest.fixture
def checkout(tmp_path, monkeypatch):
  """A minimal checkout (pyproject.toml + gin files) as the current directory."""
  root = tmp_path / "checkout"
  (root / "gin" / "runs").mkdir(parents=True)
  (root / "gin" / "models").mkdir(parents=True)
  (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
  (root / "gin" / "runs" / "pretrain.gin").write_text(PRETRAIN_GIN)
  (root / "gin" / "models" / "base.gin").write_text("D_MODEL = 768\n")
  monkeypatch.chdir(root)
  return root


def _launch(capsys, argv, root):
  code = cli.main(["launch", *argv])
  out, err = capsys.readouterr()
  out = out.replace(str(root), "$CHECKOUT").replace(sys.executable, "$PYTHON")
  return code, out, err


TPU_DATA_ENV = {"CLINICAL_T5_VOCAB": "gs://my-bucket/vocab/spiece.model",
                "CLINICAL_T5_CORPUS_DIR": "gs://my-bucket/corpus"}


@pytest.fixture
def task_env(monkeypatch):
  """The task path variables as a user would export them before launching."""
  monkeypatch.delenv("CLINICAL_T5_DATA_DIR", raising=False)
  for key, value in TPU_DATA_ENV.items():
    monkeypatch.setenv(key, value)


def test_tpu_dry_run(capsys, checkout, task_env):
  code, out, err = _launch(capsys, [
      "tpu", "--tpu", "clinical-t5-v4-32", "--zone", "us-central2-b", "--project", "my-project",
      "--source", ".", "--log-dir", "launch_logs/base", "--dry-run", "--", *TRAINER_ARGS,
      "--gin.TRAIN_STEPS=310000"], checkout)
  assert code == 0, err
  check_golden("tpu_dry_run.txt", out)


def test_tpu_dry_run_detach_without_install(capsys, checkout, monkeypatch):
  for key in ("CLINICAL_T5_VOCAB", "CLINICAL_T5_CORPUS_DIR", "CLINICAL_T5_DATA_DIR"):
    monkeypatch.delenv(key, raising=False)
  code, out, err = _launch(capsys, [
      "tpu", "--tpu", "v5e-64", "--zone", "europe-west4-b", "--source", str(checkout),
      "--log-dir", "logs", "--no-install", "--detach", "--env", "CLINICAL_T5_DATA_DIR=gs://b/d",
      "--env", "XLA_FLAGS=--xla_dump_to=/tmp/x a", "--dry-run", "--",
      f"--gin_file={checkout}/gin/runs/pretrain.gin",
      "--gin.MODEL_DIR='gs://b/m'"], checkout)
  assert code == 0, err
  check_golden("tpu_dry_run_detach.txt", out)


def test_tpu_wrapper_script_dry_run(checkout):
  env = dict(os.environ, CLINICAL_T5_PYTHON=sys.executable, **TPU_DATA_ENV)
  env.pop("CLINICAL_T5_DATA_DIR", None)
  result = subprocess.run(
      ["bash", str(REPO_ROOT / "launch" / "tpu_pod.sh"), "--tpu", "clinical-t5-v4-32",
       "--zone", "us-central2-b", "--project", "my-project", "--source", ".",
       "--log-dir", "launch_logs/base", "--dry-run", "--", *TRAINER_ARGS,
       "--gin.TRAIN_STEPS=310000"],
      capture_output=True, text=True, env=env, check=False)
  assert result.returncode == 0, result.stderr
  out = result.stdout.replace(str(checkout), "$CHECKOUT")
  check_golden("tpu_dry_run.txt", out)


def test_local_dry_run(capsys, checkout):
  code, out, err = _launch(capsys, [
      "local", "--num-processes", "2", "--port", "61000", "--log-dir", "launch_logs/local",
      "--cpu-devices-per-process", "4", "--dry-run", "--", *TRAINER_ARGS], checkout)
  assert code == 0, err
  check_golden("local_dry_run.txt", out)


def test_local_script_dry_run_with_gpus(capsys, checkout):
  code, out, err = _launch(capsys, [
      "local", "--num-processes", "4", "--port", "61000", "--log-dir", "logs",
      "--gpus-per-process", "2", "--module", "clinical_t5.evaluate", "--dry-run", "--",
      *TRAINER_ARGS], checkout)
  assert code == 0, err
  check_golden("local_dry_run_gpus.txt", out)


def test_local_wrapper_script_dry_run(checkout):
  env = dict(os.environ, CLINICAL_T5_PYTHON=sys.executable)
  result = subprocess.run(
      ["bash", str(REPO_ROOT / "launch" / "local.sh"), "--port", "61000", "--dry-run", "--",
       *TRAINER_ARGS], capture_output=True, text=True, env=env, check=False)
  assert result.returncode == 0, result.stderr
  out = result.stdout.replace(sys.executable, "$PYTHON")
  check_golden("local_sh_dry_run.txt", out)


SLURM_TASK_5 = {
    "SLURM_JOB_ID": "777001",
    "SLURM_JOB_NODELIST": "gpu[001-004,010]",
    "SLURM_STEP_NODELIST": "gpu[001-004,010]",
    "SLURM_NTASKS": "40",
    "SLURM_PROCID": "13",
    "SLURM_LOCALID": "5",
    "SLURM_NODEID": "1",
    "SLURM_STEP_TASKS_PER_NODE": "8(x5)",
    "SLURM_GPUS_ON_NODE": "8",
    "CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7",
}


def test_slurm_env_prints_exports(capsys, checkout, monkeypatch):
  for key, value in SLURM_TASK_5.items():
    monkeypatch.setenv(key, value)
  code, out, err = _launch(capsys, ["slurm-env"], checkout)
  assert code == 0, err
  check_golden("slurm_env_exports.txt", out)


def test_slurm_env_dry_run(capsys, checkout, monkeypatch):
  for key, value in SLURM_TASK_5.items():
    monkeypatch.setenv(key, value)
  code, out, err = _launch(capsys, ["slurm-env", "--dry-run", "--", *TRAINER_ARGS], checkout)
  assert code == 0, err
  check_golden("slurm_env_dry_run.txt", out)


def fake_srun(bin_dir: pathlib.Path) -> None:
  """Write an `srun` that starts every task of the fake allocation locally, as srun would.

  It reads the allocation from FAKE_NODES (comma list), FAKE_TASKS_PER_NODE and
  FAKE_GPUS_PER_NODE, sets the per-task SLURM variables and honours --output=...%t...
  """
  script = f"""#!{sys.executable}
import os, subprocess, sys
args, output = sys.argv[1:], None
while args and args[0].startswith("--"):
  if args[0].startswith("--output="):
    output = args[0].split("=", 1)[1]
  args = args[1:]
nodes = os.environ["FAKE_NODES"].split(",")
per_node = int(os.environ["FAKE_TASKS_PER_NODE"])
procs = []
for node_id in range(len(nodes)):
  for local in range(per_node):
    rank = node_id * per_node + local
    env = dict(os.environ, SLURM_PROCID=str(rank), SLURM_LOCALID=str(local),
               SLURM_NODEID=str(node_id), SLURM_NTASKS=str(per_node * len(nodes)),
               SLURM_STEP_NODELIST=os.environ["SLURM_JOB_NODELIST"],
               SLURM_STEP_TASKS_PER_NODE=f"{{per_node}}(x{{len(nodes)}})",
               SLURM_GPUS_ON_NODE=os.environ.get("FAKE_GPUS_PER_NODE", "0"))
    log = (output.replace("%x", os.environ["SLURM_JOB_NAME"]).replace("%j", os.environ["SLURM_JOB_ID"])
           .replace("%t", str(rank)))
    procs.append(subprocess.Popen(args, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT))
codes = [p.wait() for p in procs]
sys.exit(max(codes))
"""
  bin_dir.mkdir(parents=True, exist_ok=True)
  path = bin_dir / "srun"
  path.write_text(script)
  path.chmod(path.stat().st_mode | stat.S_IXUSR)


def run_sbatch(tmp_path, checkout, trainer_args, nodes, tasks_per_node, gpus_per_node,
               job_id, dry_run, module="clinical_t5.train", extra_env=None):
  """Run launch/gpu_slurm.sbatch as SLURM's batch step would, with the fake srun."""
  fake_srun(tmp_path / "bin")
  log_dir = tmp_path / "slurm_logs"
  env = dict(os.environ)
  env.update({
      "PATH": f"{tmp_path / 'bin'}:{env['PATH']}",
      "SLURM_JOB_ID": str(job_id), "SLURM_JOB_NAME": "clinical-t5",
      "SLURM_JOB_NODELIST": nodes, "SLURM_SUBMIT_DIR": str(checkout),
      "FAKE_NODES": ",".join(slurm.expand_nodelist(nodes)),
      "FAKE_TASKS_PER_NODE": str(tasks_per_node), "FAKE_GPUS_PER_NODE": str(gpus_per_node),
      "CLINICAL_T5_PYTHON": sys.executable, "CLINICAL_T5_LOG_DIR": str(log_dir),
      "CLINICAL_T5_DRY_RUN": "1" if dry_run else "0", "CLINICAL_T5_MODULE": module,
  })
  env.pop("CUDA_VISIBLE_DEVICES", None)
  env.update(extra_env or {})
  result = subprocess.run(["bash", str(REPO_ROOT / "launch" / "gpu_slurm.sbatch"), *trainer_args],
                          cwd=checkout, env=env, capture_output=True, text=True, check=False)
  logs = sorted(log_dir.glob("*.log"), key=lambda p: int(p.stem.rsplit("task", 1)[1]))
  return result, logs


def test_sbatch_dry_run_two_nodes_two_gpus(tmp_path, checkout):
  result, logs = run_sbatch(tmp_path, checkout, TRAINER_ARGS, nodes="gpu[07-08]",
                            tasks_per_node=2, gpus_per_node=2, job_id=5150, dry_run=True)
  assert result.returncode == 0, result.stderr
  assert [p.name for p in logs] == [f"clinical-t5-5150-task{r}.log" for r in range(4)]
  out = "".join(f"# {p.name}\n{p.read_text()}" for p in logs).replace(sys.executable, "$PYTHON")
  check_golden("sbatch_dry_run.txt", out)


def _free_slurm_job_id() -> int:
  """Return a job id whose SLURM-derived port (61440 + id % 4096) is free on 127.0.0.1."""
  for port in range(61440, 65536):
    with socket.socket() as s:
      try:
        s.bind(("127.0.0.1", port))
      except OSError:
        continue
    return 4096 * 100 + port - 61440
  raise RuntimeError("no free port in 61440..65535")


def test_sbatch_really_runs_two_tasks(tmp_path, checkout):
  # One node ("localhost"), 2 tasks, no GPUs: each task runs a cross-process sum.
  (checkout / "psum_check.py").write_text(PSUM_SCRIPT)
  result, logs = run_sbatch(tmp_path, checkout, ["--flag='x y'"], nodes="localhost",
                            tasks_per_node=2, gpus_per_node=0, job_id=_free_slurm_job_id(),
                            dry_run=False, module="psum_check",
                            extra_env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
  assert result.returncode == 0, result.stderr + "".join(p.read_text() for p in logs)
  results = [json.loads(line) for p in logs for line in p.read_text().splitlines()
             if line.startswith("{")]
  assert [r["process"] for r in results] == [0, 1]
  assert all(r["devices"] == 4 and r["sum"] == 6.0 for r in results)
  assert all(r["argv"] == ["--flag='x y'"] for r in results)


def _exit_code_and_error(capsys, argv):
  code = cli.main(["launch", *argv])
  err = capsys.readouterr().err.strip()
  return code, err


@pytest.mark.parametrize("argv, message", [
    (["tpu", "--tpu", "t1", "--source", ".", "--dry-run", "--", *TRAINER_ARGS], "missing --zone"),
    (["tpu", "--tpu", "t1", "--zone", "central", "--source", ".", "--dry-run", "--",
      *TRAINER_ARGS], "is not a zone name"),
    (["tpu", "--tpu", "My_TPU", "--zone", "us-central2-b", "--source", ".", "--dry-run", "--",
      *TRAINER_ARGS], "is not a TPU name"),
    (["tpu", "--tpu", "t1", "--zone", "us-central2-b", "--source", "/", "--dry-run", "--",
      *TRAINER_ARGS], "has no pyproject.toml"),
    (["local", "--num-processes", "two", "--dry-run", "--", *TRAINER_ARGS],
     "must be a positive integer, got 'two'"),
    (["local", "--num-processes", "0", "--dry-run", "--", *TRAINER_ARGS],
     "must be a positive integer, got '0'"),
    (["local", "--num-processes", "2.5", "--dry-run", "--", *TRAINER_ARGS],
     "must be a positive integer"),
    (["local", "--dry-run", "--", "--gin_file=gin/runs/missing.gin"],
     "gin file gin/runs/missing.gin (--gin_file) not found"),
    (["local", "--dry-run", "--", "--gin.MODEL_DIR='/tmp/m'"], "name no --gin_file"),
    (["local", "--dry-run", "--", "--gin_file=gin/runs"], "is a directory"),
    (["local", "--dry-run", "--", "--gin_file=gin/binary.gin"], "is not UTF-8"),
    (["local", "--dry-run", "--", "--gin_file=gin/broken.gin"], "syntax error at line 2"),
    (["local", "--dry-run", "--", "--gin_file=gin/bad_include.gin"], "includes gin/nope.gin"),
    (["slurm-env", "--mode", "sideways"], "invalid choice"),
    (["tpu", "--tpu", "t1", "--zone", "us-central2-b", "--source", ".", "--env", "NOEQUALS",
      "--dry-run", "--", *TRAINER_ARGS], "must look like NAME=VALUE"),
    (["tpu", "--tpu", "t1", "--zone", "us-central2-b", "--source", ".", "--env", "1X=2",
      "--dry-run", "--", *TRAINER_ARGS], "is not an environment variable name"),
])
def test_bad_input_exits_2(capsys, checkout, argv, message, monkeypatch):
  monkeypatch.delenv("CLOUDSDK_COMPUTE_ZONE", raising=False)
  (checkout / "gin" / "binary.gin").write_bytes(b"\xff\xfe\x00gin")
  (checkout / "gin" / "broken.gin").write_text("X = 1\nY = = 2\n")
  (checkout / "gin" / "bad_include.gin").write_text("include 'gin/nope.gin'\n")
  code, err = _exit_code_and_error(capsys, argv)
  assert code == 2
  assert message in err
  assert len(err.splitlines()) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a file without read permission")
def test_unreadable_gin_exits_2(capsys, checkout):
  path = checkout / "gin" / "secret.gin"
  path.write_text("X = 1\n")
  path.chmod(0)
  code, err = _exit_code_and_error(capsys, ["local", "--dry-run", "--", f"--gin_file={path}"])
  assert code == 2
  assert "unreadable" in err


def test_tpu_rejects_gin_outside_checkout(capsys, checkout, tmp_path):
  outside = tmp_path / "mine.gin"
  outside.write_text("X = 1\n")
  code, err = _exit_code_and_error(capsys, [
      "tpu", "--tpu", "t1", "--zone", "us-central2-b", "--source", ".", "--dry-run", "--",
      f"--gin_file={outside}"])
  assert code == 2
  assert "outside" in err


def test_slurm_env_non_integer_task_count(capsys, checkout, monkeypatch):
  for key, value in {**SLURM_TASK_5, "SLURM_NTASKS": "forty", "SLURM_STEP_TASKS_PER_NODE": ""}.items():
    monkeypatch.setenv(key, value)
  code, err = _exit_code_and_error(capsys, ["slurm-env"])
  assert code == 2
  assert "SLURM_NTASKS='forty' is not a non-negative integer" in err


def test_slurm_env_outside_slurm(capsys, checkout, monkeypatch):
  for key in list(os.environ):
    if key.startswith("SLURM_"):
      monkeypatch.delenv(key)
  code, err = _exit_code_and_error(capsys, ["slurm-env"])
  assert code == 2
  assert "SLURM_JOB_NODELIST is not set" in err


def test_slurm_env_json(capsys, checkout, monkeypatch):
  for key, value in SLURM_TASK_5.items():
    monkeypatch.setenv(key, value)
  code = cli.main(["launch", "slurm-env", "--format", "json"])
  data = json.loads(capsys.readouterr().out)
  assert code == 0
  assert data["coordinator_address"] == "gpu001:64297"   # 61440 + 777001 % 4096
  assert data["environment"]["CUDA_VISIBLE_DEVICES"] == "5"
  assert data["mode"] == "per-gpu"
