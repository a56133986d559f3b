"""Start N `jax.distributed` processes on this machine and wait for all of them.

The multi-host code paths (per-process data shards, global arrays, orbax's
multi-host checkpoints) only run with more than one process. This launcher
gives every developer a small "cluster" on 127.0.0.1:

  clinical-t5 launch local --num-processes 2 --cpu-devices-per-process 4 \\
      --log-dir /tmp/logs -- --gin_file=gin/runs/pretrain.gin ...
  -> process 0: CLINICAL_T5_PROCESS_ID=0 ... python -m clinical_t5.launch.worker ... > /tmp/logs/process-0.log
  -> process 1: CLINICAL_T5_PROCESS_ID=1 ... python -m clinical_t5.launch.worker ... > /tmp/logs/process-1.log

If one process fails, the launcher stops the others (a JAX job whose peer
died would hang in its next collective until the heartbeat timeout) and exits
with the failed process's exit code. On a GPU machine `--gpus-per-process k`
gives process i the GPUs i*k .. i*k+k-1 through CUDA_VISIBLE_DEVICES.
"""

import contextlib
import dataclasses
import os
import re
import signal
import socket
import subprocess
import sys
import time
from typing import IO, Optional, Sequence

from absl import logging

from clinical_t5.errors import UserError
from clinical_t5.launch import common
from clinical_t5.launch import worker

# NOTE: JAX's distributed client treats SIGTERM as a preemption notice and
# keeps running, so a process still alive this long after SIGTERM gets SIGKILL.
_TERMINATE_GRACE_S = 5.0
_POLL_INTERVAL_S = 0.2


@dataclasses.dataclass(frozen=True)
class LocalJob:
  """The processes and command of one `clinical-t5 launch local` run.

  Attributes:
    num_processes: processes to start, each one a jax.distributed process.
    log_dir: directory that receives process-<i>.log for each process.
    entry: worker entry arguments, e.g. ["--module", "clinical_t5.train"].
    args: arguments of the entry point (the trainer's gin flags).
    port: coordinator port on 127.0.0.1.
    cpu_devices_per_process: simulated CPU devices per process (XLA_FLAGS), or None.
    gpus_per_process: GPUs per process through CUDA_VISIBLE_DEVICES, or None.
    python: interpreter that runs the worker.
    timeout_s: stop every process after this many seconds; 0 waits forever.
  """
  num_processes: int
  log_dir: str
  entry: tuple[str, ...]
  args: tuple[str, ...]
  port: int
  cpu_devices_per_process: Optional[int] = None
  gpus_per_process: Optional[int] = None
  python: str = sys.executable
  timeout_s: float = 0.0

  def __post_init__(self):
    if self.num_processes < 1:
      raise UserError(f"--num-processes must be at least 1, got {self.num_processes}")
    if not 0 < self.port < 65536:
      raise UserError(f"--port {self.port} is outside 1..65535")
    if self.cpu_devices_per_process is not None and self.cpu_devices_per_process < 1:
      raise UserError("--cpu-devices-per-process must be at least 1")
    if self.gpus_per_process is not None and self.gpus_per_process < 1:
      raise UserError("--gpus-per-process must be at least 1")


@dataclasses.dataclass(frozen=True)
class ProcessSpec:
  """One process: the variables it gets on top of the inherited ones, its argv, its log."""
  env: dict[str, str]
  argv: list[str]
  log_path: str


def free_port() -> int:
  """Return a TCP port on 127.0.0.1 that was free a moment ago."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _with_device_count(xla_flags: str, count: int) -> str:
  """Set --xla_force_host_platform_device_count in an XLA_FLAGS string, replacing an old value."""
  flags = [f for f in xla_flags.split() if not f.startswith("--xla_force_host_platform_device_count")]
  return " ".join(flags + [f"--xla_force_host_platform_device_count={count}"])


def process_specs(job: LocalJob, base_env: Optional[dict[str, str]] = None) -> list[ProcessSpec]:
  """Return the environment additions, argv and log path of every process of `job`."""
  base_env = dict(os.environ if base_env is None else base_env)
  coordinator = f"127.0.0.1:{job.port}"
  specs = []
  for process_id in range(job.num_processes):
    env = {}
    if job.num_processes > 1:
      env.update(worker.distributed_environment(coordinator, job.num_processes, process_id))
    if job.cpu_devices_per_process is not None:
      env["XLA_FLAGS"] = _with_device_count(base_env.get("XLA_FLAGS", ""),
                                            job.cpu_devices_per_process)
    if job.gpus_per_process is not None:
      first = process_id * job.gpus_per_process
      env["CUDA_VISIBLE_DEVICES"] = ",".join(
          str(g) for g in range(first, first + job.gpus_per_process))
    argv = [job.python, "-m", "clinical_t5.launch.worker", *job.entry, "--", *job.args]
    log_path = os.path.join(job.log_dir, f"process-{process_id}.log")
    specs.append(ProcessSpec(env=env, argv=argv, log_path=log_path))
  return specs


def format_spec(spec: ProcessSpec) -> str:
  """Return one shell line that starts the process: `VAR=value ... argv > log 2>&1`."""
  assignments = [f"{k}={common.shell_quote(v)}" for k, v in sorted(spec.env.items())]
  return " ".join(assignments + [common.shell_join(spec.argv), ">",
                                 common.shell_quote(spec.log_path), "2>&1"])


def dry_run(job: LocalJob, out: IO[str]) -> int:
  """Print every command `run` would start, one process per line."""
  print(f"# {job.num_processes} process(es), coordinator 127.0.0.1:{job.port}, "
        f"logs in {job.log_dir}", file=out)
  for process_id, spec in enumerate(process_specs(job)):
    print(f"# process {process_id}", file=out)
    print(format_spec(spec), file=out)
  return 0


def _stop_all(processes: Sequence[subprocess.Popen]) -> None:
  """Send SIGTERM to every live process group, then SIGKILL after the grace period."""
  live = [p for p in processes if p.poll() is None]
  for p in live:
    with contextlib.suppress(ProcessLookupError):
      os.killpg(p.pid, signal.SIGTERM)
  deadline = time.monotonic() + _TERMINATE_GRACE_S
  for p in live:
    try:
      p.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
      with contextlib.suppress(ProcessLookupError):
        os.killpg(p.pid, signal.SIGKILL)
      p.wait()


def _wait_all(processes: Sequence[subprocess.Popen], logs: Sequence[str], timeout_s: float) -> int:
  """Wait until all processes exit 0 (return 0) or one fails (stop the rest, return its code)."""
  start = time.monotonic()
  while True:
    codes = [p.poll() for p in processes]
    failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
    if failed:
      process_id, code = failed[0]
      logging.error("process %d exited with code %d; stopping the others (log: %s)",
                    process_id, code, logs[process_id])
      _stop_all(processes)
      # NOTE: a process killed by a signal has a negative code; the launcher exits 1 then.
      return code if 0 < code < 256 else 1
    if all(c == 0 for c in codes):
      return 0
    if timeout_s and time.monotonic() - start > timeout_s:
      logging.error("timed out after %.0f s; stopping all processes", timeout_s)
      _stop_all(processes)
      return 1
    time.sleep(_POLL_INTERVAL_S)


def run(job: LocalJob) -> int:
  """Start every process of `job`, wait, and return 0 or the first failing exit code."""
  os.makedirs(job.log_dir, exist_ok=True)
  processes, logs = [], []
  try:
    for process_id, spec in enumerate(process_specs(job)):
      env = dict(os.environ)
      env.update(spec.env)
      with open(spec.log_path, "wb") as log:
        # start_new_session: each process gets its own group, so stopping it
        # also stops the helpers it spawned (TF, data loader workers).
        processes.append(subprocess.Popen(spec.argv, env=env, stdout=log,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          start_new_session=True))
      logs.append(spec.log_path)
      logging.info("started process %d (pid %d), log %s", process_id, processes[-1].pid,
                   spec.log_path)
    code = _wait_all(processes, logs, job.timeout_s)
  except BaseException:
    _stop_all(processes)
    raise
  if code == 0:
    logging.info("all %d processes finished", job.num_processes)
  return code


def parse_entry(module: Optional[str], script: Optional[str]) -> tuple[str, ...]:
  """Return the worker's entry arguments: a module (default clinical_t5.train) or a script."""
  if module and script:
    raise UserError("give only one of --module and --script")
  if script:
    if not os.path.isfile(script):
      raise UserError(f"--script {script} not found; pass an existing Python file")
    return ("--script", os.path.abspath(script))
  module = module or "clinical_t5.train"
  if not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", module):
    raise UserError(f"--module {module!r} is not a Python module name")
  return ("--module", module)
