"""Tests of the TPU launcher: the commands run on a worker, packing, and gin paths.

No TPU and no gcloud are involved. The worker commands run under bash in a
fake home directory whose `clinical-t5/venv/bin/python` records its argv, so
the tests see exactly what a TPU worker would execute.
"""

import json
import os
import pathlib
import stat
import subprocess
import sys
import tarfile
import time

import pytest

from clinical_t5.errors import UserError
from clinical_t5.launch import tpu

ARGS = ("--gin_file=gin/runs/pretrain.gin", "--gin.MODEL_DIR='gs://b/run 1'",
        '--gin.NOTE="a $HOME `x` \\ b"', "--gin.TRAIN_STEPS=10")


def _job(tmp_path, **overrides) -> tpu.TpuJob:
  source = tmp_path / "src"
  source.mkdir(exist_ok=True)
  (source / "pyproject.toml").write_text("[project]\nname = 'x'\n")
  fields = dict(tpu="t1", zone="us-central2-b", project=None, source_dir=str(source),
                log_dir=str(tmp_path / "logs"), entry=("--module", "clinical_t5.train"), args=ARGS)
  fields.update(overrides)
  return tpu.TpuJob(**fields)


def _fake_worker_home(tmp_path) -> pathlib.Path:
  """A home directory laid out as after the install step, with an argv-recording python."""
  home = tmp_path / "home"
  (home / "clinical-t5" / "src").mkdir(parents=True)
  (home / "clinical-t5" / "venv" / "bin").mkdir(parents=True)
  python = home / "clinical-t5" / "venv" / "bin" / "python"
  python.write_text(f"""#!{sys.executable}
import json, os, sys
with open(os.path.join(os.environ["HOME"], "argv.json"), "w") as f:
  json.dump({{"argv": sys.argv[1:], "cwd": os.getcwd(),
             "distributed": os.environ.get("CLINICAL_T5_DISTRIBUTED"),
             "vocab": os.environ.get("CLINICAL_T5_VOCAB")}}, f)
print("training output")
""")
  python.chmod(python.stat().st_mode | stat.S_IXUSR)
  return home


def _remote_command(argv: list[str]) -> str:
  return next(a.split("=", 1)[1] for a in argv if a.startswith("--command="))


def test_worker_receives_exact_arguments(tmp_path):
  job = _job(tmp_path, env=(("CLINICAL_T5_VOCAB", "gs://b/my vocab/'spiece'.model"),))
  home = _fake_worker_home(tmp_path)
  command = _remote_command(tpu.commands(job)[-1])
  result = subprocess.run(["bash", "-c", command], cwd=home, env=dict(os.environ, HOME=str(home)),
                          capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr
  recorded = json.loads((home / "argv.json").read_text())
  assert recorded["argv"] == ["-m", "clinical_t5.launch.worker", "--module", "clinical_t5.train",
                              "--", *ARGS]
  assert recorded["cwd"] == str(home / "clinical-t5" / "src")
  assert recorded["distributed"] == "tpu"
  assert recorded["vocab"] == "gs://b/my vocab/'spiece'.model"
  assert (home / "clinical-t5" / "logs" / "train.log").read_text() == "training output\n"


def test_detached_worker_receives_exact_arguments(tmp_path):
  job = _job(tmp_path, detach=True)
  home = _fake_worker_home(tmp_path)
  command = _remote_command(tpu.commands(job)[-1])
  result = subprocess.run(["bash", "-c", command], cwd=home, env=dict(os.environ, HOME=str(home)),
                          capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr
  assert result.stdout.startswith("started pid ")
  deadline = time.monotonic() + 30
  while not (home / "argv.json").exists() and time.monotonic() < deadline:
    time.sleep(0.1)
  recorded = json.loads((home / "argv.json").read_text())
  assert recorded["argv"][-len(ARGS):] == list(ARGS)
  assert recorded["distributed"] == "tpu"


def test_commands_target_every_worker(tmp_path):
  steps = tpu.commands(_job(tmp_path, project="my-project"))
  assert [s[4] for s in steps] == ["scp", "ssh", "ssh"]
  for step in steps:
    assert "--worker=all" in step
    assert "--zone=us-central2-b" in step
    assert "--project=my-project" in step
  assert steps[1][-2] == f"--output-directory={tmp_path / 'logs' / 'install'}"
  assert steps[2][-2] == f"--output-directory={tmp_path / 'logs' / 'train'}"


def test_no_install_runs_only_training(tmp_path):
  steps = tpu.commands(_job(tmp_path, install=False))
  assert len(steps) == 1
  assert "clinical_t5.launch.worker" in _remote_command(steps[0])


def test_pack_source_skips_environments(tmp_path):
  source = tmp_path / "src"
  for rel in ("pyproject.toml", "clinical_t5/a.py", "gin/runs/p.gin", ".venv/bin/python",
              ".git/HEAD", "clinical_t5/__pycache__/a.pyc", "launch_logs/x.log", "x.egg-info/PKG"):
    path = source / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
  tarball = tmp_path / "out" / "src.tar.gz"
  count = tpu.pack_source(str(source), str(tarball), skip_dirs=[str(source / "launch_logs")])
  with tarfile.open(tarball) as tar:
    names = sorted(tar.getnames())
  assert names == ["clinical_t5/a.py", "gin/runs/p.gin", "pyproject.toml"]
  assert count == 3


def test_pack_source_skips_data_dirs(tmp_path):
  # A synthetic or real data set, a corpus, a vocabulary or a model directory
  # inside the checkout must never be shipped to the workers (PHI, size).
  source = tmp_path / "src"
  for rel in ("pyproject.toml", "clinical_t5/a.py", "clinical_t5/experiment/published.csv",
              "data/synth/synth_report.json", "data/synth/mimic-iii/NOTEEVENTS.csv",
              "physionet/mimic-iii/NOTEEVENTS.csv.gz", "physionet/mimic-iii/ICUSTAYS.csv",
              "physionet/note/discharge.csv.gz", "physionet/note/discharge_detail.csv.gz",
              "physionet/mednli/mli_train_v1.jsonl", "physionet/clip/sentence_level.csv",
              "corpus/stats.json", "corpus/removed_subjects.csv",
              "corpus/train.tfrecord-00000-of-00001", "vocab/vocab_info.json",
              "vocab/spiece.model", "runs/m/metrics.jsonl", "runs/m/checkpoint_100/x",
              "stray/notes.tfrecord", "clinical_t5/checkpoint_utils/b.py"):
    path = source / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
  tarball = tmp_path / "out" / "src.tar.gz"
  tpu.pack_source(str(source), str(tarball))
  with tarfile.open(tarball) as tar:
    names = sorted(tar.getnames())
  assert names == ["clinical_t5/a.py", "clinical_t5/checkpoint_utils/b.py",
                   "clinical_t5/experiment/published.csv", "pyproject.toml"]


@pytest.mark.parametrize("python", ["python3.11; rm -rf ~", "python 3.11", "$(id)", ""])
def test_python_option_rejects_shell(tmp_path, python):
  with pytest.raises(UserError, match="--python"):
    _job(tmp_path, python=python)
  assert _job(tmp_path, python="/opt/py/bin/python3.11").python == "/opt/py/bin/python3.11"


def test_relocate_gin_args(tmp_path):
  source = tmp_path / "src"
  (source / "gin").mkdir(parents=True)
  (source / "gin" / "a.gin").write_text("X = 1\n")
  args = [f"--gin_file={source}/gin/a.gin", "--gin_file", "gin/a.gin",
          "--gin_file=gs://b/c.gin", "--gin.X=1"]
  assert tpu.relocate_gin_args(args, str(source), cwd=str(tmp_path)) == [
      "--gin_file=gin/a.gin", "--gin_file", "gin/a.gin", "--gin_file=gs://b/c.gin", "--gin.X=1"]
  outside = tmp_path / "b.gin"
  outside.write_text("X = 1\n")
  with pytest.raises(UserError, match="outside"):
    tpu.relocate_gin_args([f"--gin_file={outside}"], str(source), cwd=str(tmp_path))


def test_run_without_gcloud_is_a_user_error(tmp_path):
  with pytest.raises(UserError, match="not found on PATH"):
    tpu.run(_job(tmp_path, gcloud="no-such-gcloud-binary"))


def test_run_executes_steps_in_order(tmp_path):
  # A stand-in gcloud that logs its arguments; the launcher must pack, then call it 3 times.
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  fake = bin_dir / "gcloud"
  fake.write_text(f"#!{sys.executable}\nimport sys\n"
                  f"open({str(tmp_path / 'calls.txt')!r}, 'a').write(sys.argv[4] + '\\n')\n")
  fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
  job = _job(tmp_path, gcloud=str(fake))
  assert tpu.run(job) == 0
  assert (tmp_path / "calls.txt").read_text().split() == ["scp", "ssh", "ssh"]
  assert (tmp_path / "logs" / "clinical-t5-src.tar.gz").exists()
  assert (tmp_path / "logs" / "train").is_dir()
