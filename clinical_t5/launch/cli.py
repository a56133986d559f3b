"""`clinical-t5 launch tpu|slurm-env|local`: start training on many processes.

Everything after `--` goes unchanged to the entry point (by default the
trainer, `python -m clinical_t5.train`):

  clinical-t5 launch local --num-processes 2 -- --gin_file=gin/runs/pretrain.gin ...
  clinical-t5 launch tpu --tpu my-v4-32 --zone us-central2-b --dry-run -- --gin_file=...
  srun clinical-t5 launch slurm-env -- --gin_file=...        # inside sbatch
  srun clinical-t5 launch slurm-env                           # prints this task's variables

Gin files named by `--gin_file` are checked (exist, readable, valid gin
syntax) before anything starts; bad input exits with status 2.
"""

import argparse
import dataclasses
import json
import os
import sys
from typing import Optional, Sequence

from absl import logging

from clinical_t5.errors import UserError
from clinical_t5.launch import common
from clinical_t5.launch import local as local_lib
from clinical_t5.launch import slurm as slurm_lib
from clinical_t5.launch import tpu as tpu_lib

# The tasks read their data paths from these; a worker needs the same values.
FORWARDED_VARIABLES = ("CLINICAL_T5_VOCAB", "CLINICAL_T5_CORPUS_DIR", "CLINICAL_T5_DATA_DIR")

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _parser_class():
  from clinical_t5.cli import OneLineArgumentParser  # pylint: disable=g-import-not-at-top
  return OneLineArgumentParser


def _count(text: str) -> int:
  try:
    return common.positive_int(text, "the value")
  except UserError as e:
    raise argparse.ArgumentTypeError(str(e)) from None


def _port(text: str) -> int:
  value = _count(text)
  if value > 65535:
    raise argparse.ArgumentTypeError(f"port {value} is outside 1..65535")
  return value


def _add_entry_options(parser: argparse.ArgumentParser) -> None:
  group = parser.add_mutually_exclusive_group()
  group.add_argument("--module", default=None,
                     help="Python module each process runs as __main__ (default: clinical_t5.train; "
                          "clinical_t5.evaluate and clinical_t5.infer also work)")
  group.add_argument("--script", default=None,
                     help="Python file each process runs instead of a module (for tests and tools)")
  parser.add_argument("--dry-run", action="store_true",
                      help="print every command with its environment and start nothing")


def _build_parser(prog: str) -> argparse.ArgumentParser:
  parser_class = _parser_class()
  parser = parser_class(prog=prog, description=(
      "Start the same training command on every TPU worker, every SLURM task or N local "
      "processes. Trainer arguments (gin flags) follow `--`."))
  sub = parser.add_subparsers(dest="launcher", required=True, metavar="{tpu,slurm-env,local}")

  tpu = sub.add_parser("tpu", help="ship, install and run on every worker of an existing TPU VM",
                       usage="%(prog)s --tpu NAME --zone ZONE [OPTIONS] -- TRAINER ARGS",
                       description=tpu_lib.__doc__.splitlines()[0] + " It creates no TPU.")
  tpu.add_argument("--tpu", required=True, help="name of an existing TPU VM (it is not created)")
  tpu.add_argument("--zone", default=os.environ.get("CLOUDSDK_COMPUTE_ZONE"),
                   help="zone of the TPU VM, e.g. us-central2-b (default: $CLOUDSDK_COMPUTE_ZONE)")
  tpu.add_argument("--project", default=os.environ.get("CLOUDSDK_CORE_PROJECT"),
                   help="Google Cloud project id (default: $CLOUDSDK_CORE_PROJECT, else gcloud's)")
  tpu.add_argument("--source", default=_REPO_ROOT,
                   help="checkout to ship and install on the workers (default: this one)")
  tpu.add_argument("--log-dir", default="launch_logs/tpu",
                   help="local directory for the source archive and per-worker logs "
                        "(<dir>/install/<worker>.log, <dir>/train/<worker>.log)")
  tpu.add_argument("--no-install", dest="install", action="store_false",
                   help="skip shipping and installing; run on what the workers already have")
  tpu.add_argument("--detach", action="store_true",
                   help="start training in the background on the workers and return at once")
  tpu.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="environment variable for the trainer on every worker (repeatable); "
                        f"{', '.join(FORWARDED_VARIABLES)} are forwarded when set here")
  tpu.add_argument("--python", default="python3.11",
                   help="interpreter on the workers that creates the virtual environment")
  tpu.add_argument("--jax-spec", default=tpu_lib.DEFAULT_JAX_SPEC,
                   help="pip requirement that installs JAX with TPU support")
  _add_entry_options(tpu)

  slurm = sub.add_parser(
      "slurm-env", help="derive jax.distributed settings from SLURM variables; print them, "
                        "or run the trainer with them",
      usage="%(prog)s [OPTIONS] [-- TRAINER ARGS]",
      description="Run inside `srun`. Without `--`, print this task's coordinator address, "
                  "process count, process id and CUDA_VISIBLE_DEVICES. With `-- TRAINER ARGS`, "
                  "run the trainer with them in this process.")
  slurm.add_argument("--mode", choices=slurm_lib.MODES, default="auto",
                     help="processes per node: one per node using all its GPUs, one per GPU, or "
                          "auto (decided from tasks and GPUs on the node)")
  slurm.add_argument("--port", type=_port, default=None,
                     help="coordinator TCP port (default: derived from SLURM_JOB_ID, as JAX does)")
  slurm.add_argument("--format", choices=("shell", "json"), default="shell",
                     help="output format when no trainer arguments follow: shell exports or JSON")
  _add_entry_options(slurm)

  local = sub.add_parser(
      "local", help="start N jax.distributed processes on 127.0.0.1",
      usage="%(prog)s [OPTIONS] -- TRAINER ARGS",
      description="Start N processes of the trainer on this machine, connected through "
                  "jax.distributed on 127.0.0.1, with one log per process; wait for all and "
                  "exit with the first failing exit code.")
  local.add_argument("--num-processes", type=_count, default=2,
                     help="number of processes to start (default: 2)")
  local.add_argument("--port", type=_port, default=None,
                     help="coordinator TCP port on 127.0.0.1 (default: a free port)")
  local.add_argument("--log-dir", default="launch_logs/local",
                     help="directory for process-<i>.log, one log per process")
  local.add_argument("--cpu-devices-per-process", type=_count, default=None,
                     help="simulated CPU devices per process (sets XLA_FLAGS); default: inherit")
  local.add_argument("--gpus-per-process", type=_count, default=None,
                     help="GPUs per process: process i gets GPUs i*k..i*k+k-1 through "
                          "CUDA_VISIBLE_DEVICES (default: inherit, and every process sees all)")
  local.add_argument("--timeout-s", type=_count, default=None,
                     help="stop every process after this many seconds (default: wait forever)")
  _add_entry_options(local)
  return parser


def _search_dirs(checkout: str) -> list[str]:
  """Return where the trainer looks for gin files: the current directory, checkout, checkout/gin."""
  return [os.getcwd(), checkout, os.path.join(checkout, "gin")]


def _check_gins(args: argparse.Namespace, trainer_args: Sequence[str],
                search_dirs: Sequence[str]) -> None:
  """Check gin files; the trainer entry points need at least one."""
  module = args.module or ("" if args.script else "clinical_t5.train")
  if module.startswith("clinical_t5.") or common.gin_files(trainer_args):
    common.check_gin_files(trainer_args, search_dirs)


def _worker_environment(pairs: Sequence[str]) -> tuple[tuple[str, str], ...]:
  """Return the forwarded task variables plus each --env NAME=VALUE, later ones winning."""
  env = {name: os.environ[name] for name in FORWARDED_VARIABLES if os.environ.get(name)}
  for pair in pairs:
    if "=" not in pair:
      raise UserError(f"--env {pair!r} must look like NAME=VALUE")
    name, value = pair.split("=", 1)
    env[name] = value
  for name, value in env.items():
    if name in FORWARDED_VARIABLES and "://" not in value:
      logging.warning("%s=%s is a local path; every TPU worker needs it at the same path, "
                      "so a gs:// bucket is usually what you want", name, value)
  return tuple(env.items())


def _run_tpu(args: argparse.Namespace, trainer_args: list[str]) -> int:
  if not args.zone:
    raise UserError("missing --zone: pass the TPU's zone, e.g. --zone us-central2-b "
                    "(or set CLOUDSDK_COMPUTE_ZONE)")
  source = os.path.abspath(args.source)
  _check_gins(args, trainer_args, _search_dirs(source))
  trainer_args = tpu_lib.relocate_gin_args(trainer_args, source, os.getcwd())
  model_dir = common.gin_macro(trainer_args, "MODEL_DIR")
  if model_dir is not None and "://" not in model_dir:
    logging.warning("MODEL_DIR %s is a local path; on a multi-worker slice every worker needs "
                    "the same directory, so use a gs:// bucket", model_dir)
  job = tpu_lib.TpuJob(
      tpu=args.tpu, zone=args.zone, project=args.project, source_dir=source,
      log_dir=args.log_dir, entry=local_lib.parse_entry(args.module, args.script),
      args=tuple(trainer_args), install=args.install, detach=args.detach,
      env=_worker_environment(args.env), python=args.python, jax_spec=args.jax_spec)
  if args.dry_run:
    return tpu_lib.dry_run(job, sys.stdout)
  return tpu_lib.run(job)


def _run_slurm_env(args: argparse.Namespace, trainer_args: list[str],
                   has_command: bool) -> int:
  task = slurm_lib.task_from_environment(os.environ, mode=args.mode, port=args.port)
  env = task.environment()
  if not has_command:
    if args.format == "json":
      print(json.dumps({"environment": env, **dataclasses.asdict(task)}, sort_keys=True))
    else:
      print(f"# SLURM task {task.process_id} of {task.num_processes} on {task.node}: "
            f"mode {task.mode}, local rank {task.local_rank}, {task.tasks_on_node} task(s) "
            f"and {task.gpus_on_node} GPU(s) on the node")
      for key, value in sorted(env.items()):
        print(f"export {key}={common.shell_quote(value)}")
    return 0

  _check_gins(args, trainer_args, _search_dirs(_REPO_ROOT))
  entry = local_lib.parse_entry(args.module, args.script)
  argv = [sys.executable, "-m", "clinical_t5.launch.worker", *entry, "--", *trainer_args]
  if args.dry_run:
    assignments = [f"{k}={common.shell_quote(v)}" for k, v in sorted(env.items())]
    print(" ".join(assignments + [common.shell_join(argv)]))
    return 0
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, argv, {**os.environ, **env})
  return 1  # not reached


def _run_local(args: argparse.Namespace, trainer_args: list[str]) -> int:
  _check_gins(args, trainer_args, _search_dirs(_REPO_ROOT))
  port = args.port or local_lib.free_port()
  job = local_lib.LocalJob(
      num_processes=args.num_processes, log_dir=args.log_dir,
      entry=local_lib.parse_entry(args.module, args.script), args=tuple(trainer_args),
      port=port, cpu_devices_per_process=args.cpu_devices_per_process,
      gpus_per_process=args.gpus_per_process, timeout_s=float(args.timeout_s or 0))
  if args.dry_run:
    return local_lib.dry_run(job, sys.stdout)
  return local_lib.run(job)


def main_argv(argv: Sequence[str], prog: str = "clinical-t5 launch") -> int:
  """Parse `LAUNCHER [OPTIONS] [-- TRAINER ARGS]` and run the launcher; return the exit code."""
  argv = list(argv)
  has_command = "--" in argv
  own, trainer_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if has_command \
      else (argv, [])
  args = _build_parser(prog).parse_args(own)
  if args.launcher == "tpu":
    return _run_tpu(args, trainer_args)
  if args.launcher == "slurm-env":
    return _run_slurm_env(args, trainer_args, has_command)
  return _run_local(args, trainer_args)


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Run as `python -m clinical_t5.launch.cli`, with the same exit codes as `clinical-t5 launch`."""
  from clinical_t5 import cli  # pylint: disable=g-import-not-at-top
  return cli.main(["launch", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
  sys.exit(main())
