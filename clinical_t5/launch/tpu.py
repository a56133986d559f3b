"""Run one training command on every worker of an existing Cloud TPU VM.

A TPU pod slice (v4-32, v5e-64, ...) has several host VMs ("workers"); JAX
only starts when the same program runs on all of them. This module builds the
`gcloud compute tpus tpu-vm` commands that ship this checkout to every worker,
install it, and start the same command everywhere. It creates no TPU and no
bucket. With `--dry-run` it only prints the commands:

  clinical-t5 launch tpu --tpu my-v4-32 --zone us-central2-b --log-dir logs/run1 --dry-run \\
      -- --gin_file=gin/runs/pretrain.gin --gin.MODEL_DIR="'gs://b/m'"
  -> # pack ... -> logs/run1/clinical-t5-src.tar.gz
     gcloud compute tpus tpu-vm scp logs/run1/clinical-t5-src.tar.gz my-v4-32:clinical-t5-src.tar.gz --worker=all ...
     gcloud compute tpus tpu-vm ssh my-v4-32 --worker=all --output-directory=logs/run1/install --command=...
     gcloud compute tpus tpu-vm ssh my-v4-32 --worker=all --output-directory=logs/run1/train --command=...

gcloud writes each worker's output to `<output-directory>/<worker>.log` on
the launching machine, and the workers also keep `~/clinical-t5/logs/train.log`.

NOTE: the tests run the worker commands under bash in a fake home directory
and call a stand-in gcloud. No test has run them on a real TPU VM, so the
install step (apt, pip, libtpu) is checked only for syntax and order.
"""

import dataclasses
import os
import re
import shutil
import subprocess
import tarfile
from typing import IO, Optional, Sequence

from absl import logging

from clinical_t5.errors import UserError
from clinical_t5.launch import common

# NOTE: pyproject pins jax 0.10.2 (CPU wheel); the TPU extra adds the matching libtpu.
DEFAULT_JAX_SPEC = "jax[tpu]==0.10.2"
REMOTE_ROOT = "clinical-t5"           # relative to the worker's home directory
TARBALL_NAME = "clinical-t5-src.tar.gz"

# Names that never travel to the workers: environments, caches, build and run outputs.
_SKIP_NAMES = {".git", ".venv", "venv", "__pycache__", ".pytest_cache", "build", "dist",
               ".mypy_cache", "demo_out", "bench_out", "node_modules"}
# A directory that contains one of these files is an output of the pipeline (synthetic
# or real MIMIC data, a corpus, a vocabulary, a model directory). Notes carry
# PHI and outputs are large, so such directories never travel to the workers;
# they read data from a bucket.
_OUTPUT_MARKERS = ("synth_report.json", "removed_subjects.csv", "vocab_info.json",
                   "metrics.jsonl", "NOTEEVENTS.csv", "NOTEEVENTS.csv.gz", "discharge.csv",
                   "discharge.csv.gz", "radiology.csv", "radiology.csv.gz",
                   "mli_train_v1.jsonl", "sentence_level.csv")
# Corpus shards outside a marked directory are skipped too.
_DATA_FILE_RE = re.compile(r".*\.tfrecord(-\d+-of-\d+)?")

_ZONE_RE = re.compile(r"[a-z]+-[a-z]+[0-9]+-[a-z]")
_TPU_NAME_RE = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
_PROJECT_RE = re.compile(r"[a-z][-a-z0-9:.]{4,61}[a-z0-9]")
# An interpreter name or path: it is pasted into the install script unquoted.
_PYTHON_RE = re.compile(r"[A-Za-z0-9_.+/-]+")


@dataclasses.dataclass(frozen=True)
class TpuJob:
  """The TPU VM, checkout and command of one `clinical-t5 launch tpu` run.

  Attributes:
    tpu: name of an existing TPU VM (gcloud compute tpus tpu-vm list).
    zone: its zone, e.g. us-central2-b.
    project: Google Cloud project, or None for gcloud's configured one.
    source_dir: checkout to ship to the workers (the directory with pyproject.toml).
    log_dir: local directory for the source archive and the per-worker logs.
    entry: worker entry arguments, e.g. ("--module", "clinical_t5.train").
    args: arguments of the entry point (the trainer's gin flags).
    install: whether to ship and install the checkout before running.
    detach: start training in the background on the workers and return at once.
    env: (name, value) pairs set for the entry point on every worker.
    python: interpreter on the workers that creates the virtual environment.
    jax_spec: pip requirement for JAX with TPU support.
    gcloud: the gcloud executable.
  """
  tpu: str
  zone: str
  project: Optional[str]
  source_dir: str
  log_dir: str
  entry: tuple[str, ...]
  args: tuple[str, ...]
  install: bool = True
  detach: bool = False
  env: tuple[tuple[str, str], ...] = ()
  python: str = "python3.11"
  jax_spec: str = DEFAULT_JAX_SPEC
  gcloud: str = "gcloud"

  def __post_init__(self):
    if not self.zone:
      raise UserError("missing --zone: pass the TPU's zone, e.g. --zone us-central2-b "
                      "(gcloud compute tpus tpu-vm list --zone=ZONE shows it)")
    if not _ZONE_RE.fullmatch(self.zone):
      raise UserError(f"--zone {self.zone!r} is not a zone name like us-central2-b")
    if not _TPU_NAME_RE.fullmatch(self.tpu or ""):
      raise UserError(f"--tpu {self.tpu!r} is not a TPU name (lowercase letters, digits and "
                      "hyphens, starting with a letter, at most 63 characters)")
    if self.project is not None and not _PROJECT_RE.fullmatch(self.project):
      raise UserError(f"--project {self.project!r} is not a Google Cloud project id")
    if not _PYTHON_RE.fullmatch(self.python or ""):
      raise UserError(f"--python {self.python!r} is not an interpreter name or path such as "
                      "python3.11 (letters, digits and _ . + / - only)")
    for name, _ in self.env:
      if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise UserError(f"--env {name!r} is not an environment variable name")
    if not os.path.isfile(os.path.join(self.source_dir, "pyproject.toml")):
      raise UserError(f"--source {self.source_dir} has no pyproject.toml; pass the "
                      "clinical-t5 checkout to install on the workers")


def _gcloud_tpu(job: TpuJob, verb: str) -> list[str]:
  return [job.gcloud, "compute", "tpus", "tpu-vm", verb]


def _location_flags(job: TpuJob) -> list[str]:
  flags = [f"--zone={job.zone}"]
  if job.project:
    flags.append(f"--project={job.project}")
  return flags


def install_script(job: TpuJob) -> str:
  """Return the shell script that installs the shipped checkout on one worker."""
  root = REMOTE_ROOT
  return " && ".join([
      # NOTE: TPU VM base images (Ubuntu 22.04) ship Python 3.10; the project needs 3.11.
      f"(command -v {job.python} >/dev/null || (sudo apt-get update -qq && "
      f"sudo apt-get install -y -qq {job.python} {job.python}-venv))",
      f"mkdir -p {root}/logs",
      f"rm -rf {root}/src",
      f"mkdir -p {root}/src",
      f"tar -xzf {TARBALL_NAME} -C {root}/src",
      f"(test -x {root}/venv/bin/python || {job.python} -m venv {root}/venv)",
      f"{root}/venv/bin/pip install -q --upgrade pip",
      f"{root}/venv/bin/pip install -q -e {root}/src {common.shell_quote(job.jax_spec)}",
      f"{root}/venv/bin/python -m clinical_t5.cli --version",
  ])


def train_script(job: TpuJob) -> str:
  """Return the shell command that starts the entry point on one worker."""
  worker_argv = ["../venv/bin/python", "-m", "clinical_t5.launch.worker", *job.entry, "--",
                 *job.args]
  assignments = ["CLINICAL_T5_DISTRIBUTED=tpu"] + [f"{k}={v}" for k, v in job.env]
  run = f"env {common.shell_join(assignments)} {common.shell_join(worker_argv)}"
  if job.detach:
    return (f"cd {REMOTE_ROOT}/src && mkdir -p ../logs && "
            f"nohup {run} > ../logs/train.log 2>&1 < /dev/null & "
            f"echo started pid $! on $(hostname), log ~/{REMOTE_ROOT}/logs/train.log")
  return (f"set -o pipefail && cd {REMOTE_ROOT}/src && mkdir -p ../logs && "
          f"{run} 2>&1 | tee ../logs/train.log")


def commands(job: TpuJob) -> list[list[str]]:
  """Return the gcloud commands, in order (the source archive is packed before the first)."""
  tarball = os.path.join(job.log_dir, TARBALL_NAME)
  steps = []
  if job.install:
    steps.append(_gcloud_tpu(job, "scp") + [tarball, f"{job.tpu}:{TARBALL_NAME}",
                                           "--worker=all", *_location_flags(job)])
    steps.append(_gcloud_tpu(job, "ssh") + [
        job.tpu, *_location_flags(job), "--worker=all",
        f"--output-directory={os.path.join(job.log_dir, 'install')}",
        f"--command={install_script(job)}"])
  steps.append(_gcloud_tpu(job, "ssh") + [
      job.tpu, *_location_flags(job), "--worker=all",
      f"--output-directory={os.path.join(job.log_dir, 'train')}",
      f"--command={train_script(job)}"])
  return steps


def _is_output_dir(path: str) -> bool:
  """Return whether `path` contains input data or a pipeline output (see _OUTPUT_MARKERS)."""
  return (re.fullmatch(r"checkpoint_\d+", os.path.basename(path)) is not None
          or any(os.path.exists(os.path.join(path, marker)) for marker in _OUTPUT_MARKERS))


def _source_files(source_dir: str) -> list[str]:
  """Return the files to ship, relative to `source_dir`.

  Environments, caches, data and pipeline outputs stay behind (`_SKIP_NAMES`,
  `_OUTPUT_MARKERS`, `_DATA_FILE_RE`).
  """
  files = []
  for dirpath, dirnames, filenames in os.walk(source_dir):
    dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_NAMES and not d.endswith(".egg-info")
                         and not _is_output_dir(os.path.join(dirpath, d)))
    rel_dir = os.path.relpath(dirpath, source_dir)
    for name in sorted(filenames):
      if name.endswith((".pyc", ".pyo")) or _DATA_FILE_RE.fullmatch(name):
        continue
      files.append(os.path.normpath(os.path.join(rel_dir, name)))
  return files


def pack_source(source_dir: str, tarball: str, skip_dirs: Sequence[str] = ()) -> int:
  """Write the checkout into a gzipped tar archive; return the number of files."""
  skip = {os.path.abspath(d) for d in skip_dirs}
  files = [f for f in _source_files(source_dir)
           if not any(os.path.abspath(os.path.join(source_dir, f)).startswith(s + os.sep)
                      for s in skip)]
  os.makedirs(os.path.dirname(os.path.abspath(tarball)), exist_ok=True)
  with tarfile.open(tarball, "w:gz") as tar:
    for rel in files:
      tar.add(os.path.join(source_dir, rel), arcname=rel, recursive=False)
  return len(files)


def dry_run(job: TpuJob, out: IO[str]) -> int:
  """Print every step `run` would take, as shell lines."""
  tarball = os.path.join(job.log_dir, TARBALL_NAME)
  if job.install:
    print(f"# pack {job.source_dir} (without .git, .venv, caches, data and outputs) -> {tarball}", file=out)
  for argv in commands(job):
    print(common.shell_join(argv), file=out)
  return 0


def run(job: TpuJob) -> int:
  """Pack, ship, install and run; return the exit code of the first failing step."""
  if shutil.which(job.gcloud) is None:
    raise UserError(f"{job.gcloud} not found on PATH; install the Google Cloud CLI "
                    "(https://cloud.google.com/sdk/docs/install) and run gcloud auth login")
  os.makedirs(os.path.join(job.log_dir, "install"), exist_ok=True)
  os.makedirs(os.path.join(job.log_dir, "train"), exist_ok=True)
  if job.install:
    tarball = os.path.join(job.log_dir, TARBALL_NAME)
    count = pack_source(job.source_dir, tarball, skip_dirs=[job.log_dir])
    logging.info("packed %d files of %s into %s", count, job.source_dir, tarball)
  for argv in commands(job):
    logging.info("running: %s", common.shell_join(argv[:6]))
    code = subprocess.run(argv, check=False).returncode
    if code != 0:
      logging.error("step failed with exit code %d; per-worker logs are in %s", code, job.log_dir)
      return code if 0 < code < 256 else 1
  if job.detach:
    logging.info("training started in the background; fetch logs with: %s",
                 common.shell_join(_gcloud_tpu(job, "ssh") + [
                     job.tpu, *_location_flags(job), "--worker=all",
                     f"--output-directory={os.path.join(job.log_dir, 'train')}",
                     f"--command=tail -n 200 {REMOTE_ROOT}/logs/train.log"]))
  return 0


def relocate_gin_args(args: Sequence[str], source_dir: str, cwd: str) -> list[str]:
  """Rewrite local `--gin_file` paths relative to `source_dir`, where the workers run.

  A gin file outside the checkout would not exist on the workers, so it raises
  UserError; bucket URLs stay as they are.
  """
  source = os.path.realpath(source_dir)
  result = list(args)
  for i, arg in enumerate(result):
    if arg.startswith("--gin_file="):
      prefix, name = "--gin_file=", arg.split("=", 1)[1]
    elif i > 0 and result[i - 1] == "--gin_file":
      prefix, name = "", arg
    else:
      continue
    if "://" in name:
      continue
    local = os.path.realpath(os.path.join(cwd, name))
    if not os.path.exists(local):
      local = os.path.realpath(os.path.join(source, name))
    if os.path.commonpath([local, source]) != source:
      raise UserError(f"gin file {name} is outside {source_dir}, so the TPU workers would not "
                      "have it; copy it into the checkout (e.g. gin/runs/) or to a gs:// bucket")
    result[i] = prefix + os.path.relpath(local, source)
  return result
