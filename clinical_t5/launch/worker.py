"""Start `jax.distributed` from environment variables, then run a training entry point.

Every launcher (`clinical-t5 launch tpu|slurm-env|local`) starts this module in
each process. It reads the distributed set-up that the launcher put into the
environment, calls `jax.distributed.initialize` before anything touches a JAX
backend, and then runs the entry point module as `__main__` with the remaining
arguments, exactly as `python -m` would:

  CLINICAL_T5_COORDINATOR_ADDRESS=127.0.0.1:61000 CLINICAL_T5_NUM_PROCESSES=2 \\
  CLINICAL_T5_PROCESS_ID=1 python -m clinical_t5.launch.worker --module clinical_t5.train \\
      -- --gin_file=gin/runs/pretrain.gin --gin.MODEL_DIR="'/tmp/m'"
  -> jax.distributed.initialize("127.0.0.1:61000", num_processes=2, process_id=1)
  -> python -m clinical_t5.train --gin_file=gin/runs/pretrain.gin --gin.MODEL_DIR="'/tmp/m'"

`CLINICAL_T5_DISTRIBUTED=tpu` (or `auto`, the trainer's name for it) instead
lets JAX detect the set-up itself, which on a Cloud TPU VM means reading its
metadata server. Without any of these variables the process runs
alone and nothing is initialized. `initialize_from_environment` is safe to
call again, so an entry point may also call it itself.
"""

import os
import re
import runpy
import sys
import traceback
from typing import Mapping, Optional, Sequence

from absl import logging

from clinical_t5.errors import UserError

ENV_COORDINATOR = "CLINICAL_T5_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "CLINICAL_T5_NUM_PROCESSES"
ENV_PROCESS_ID = "CLINICAL_T5_PROCESS_ID"
ENV_DISTRIBUTED = "CLINICAL_T5_DISTRIBUTED"
ENV_INIT_TIMEOUT = "CLINICAL_T5_INIT_TIMEOUT_S"

# NOTE: JAX's own default; a slow node start (image pull, NFS) can take minutes.
_DEFAULT_INIT_TIMEOUT_S = 300


def distributed_environment(coordinator_address: str, num_processes: int,
                            process_id: int) -> dict[str, str]:
  """Return the environment variables that describe one process of a job."""
  return {
      ENV_COORDINATOR: coordinator_address,
      ENV_NUM_PROCESSES: str(num_processes),
      ENV_PROCESS_ID: str(process_id),
  }


def _read_int(env: Mapping[str, str], name: str) -> int:
  value = env.get(name, "").strip()
  if not re.fullmatch(r"\d+", value):
    raise UserError(f"{name}={value!r} is not a non-negative integer; the launcher sets it, "
                    "so start the process through `clinical-t5 launch`")
  return int(value)


def read_environment(env: Mapping[str, str]) -> Optional[tuple[str, int, int]]:
  """Return (coordinator_address, num_processes, process_id), or None for a single process."""
  if ENV_NUM_PROCESSES not in env:
    return None
  num_processes = _read_int(env, ENV_NUM_PROCESSES)
  process_id = _read_int(env, ENV_PROCESS_ID)
  coordinator = env.get(ENV_COORDINATOR, "").strip()
  if not re.fullmatch(r"\[?[A-Za-z0-9.:_-]+\]?:\d+", coordinator):
    raise UserError(f"{ENV_COORDINATOR}={coordinator!r} is not a host:port address")
  if num_processes < 1 or process_id >= num_processes:
    raise UserError(f"{ENV_PROCESS_ID}={process_id} is outside 0..{num_processes - 1} "
                    f"({ENV_NUM_PROCESSES}={num_processes})")
  return coordinator, num_processes, process_id


def initialize_from_environment(env: Optional[Mapping[str, str]] = None) -> bool:
  """Call `jax.distributed.initialize` as the launcher variables specify; return whether it did.

  Returns False for a single process (no launcher variables) and when JAX is
  already initialized.
  """
  env = os.environ if env is None else env
  mode = env.get(ENV_DISTRIBUTED, "").strip()
  explicit = read_environment(env)
  if mode not in ("", "tpu", "auto"):
    raise UserError(f"{ENV_DISTRIBUTED}={mode!r} is not supported; use 'tpu' (or its synonym "
                    "'auto') or leave it unset")
  if not mode and explicit is None:
    return False

  import jax  # pylint: disable=g-import-not-at-top
  if jax.distributed.is_initialized():
    return False

  timeout = _DEFAULT_INIT_TIMEOUT_S
  if env.get(ENV_INIT_TIMEOUT, "").strip():
    timeout = _read_int(env, ENV_INIT_TIMEOUT)
  if explicit is None:
    logging.info("initializing jax.distributed from the Cloud TPU metadata")
    jax.distributed.initialize(initialization_timeout=timeout)
    return True

  coordinator, num_processes, process_id = explicit
  logging.info("initializing jax.distributed: process %d of %d, coordinator %s",
               process_id, num_processes, coordinator)
  # NOTE: "deactivate" stops JAX's cluster auto-detection, which under SLURM
  # would restrict every process to a single GPU. CUDA_VISIBLE_DEVICES, set by
  # the launcher, selects the GPUs of this process.
  jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                             process_id=process_id, cluster_detection_method="deactivate",
                             initialization_timeout=timeout)
  return True


def run_entry_point(module: Optional[str], script: Optional[str], args: Sequence[str]) -> None:
  """Run `module` (as `python -m` does) or the file `script` with `args` as its argv."""
  if (module is None) == (script is None):
    raise UserError("give exactly one of --module and --script")
  sys.argv = [module or script, *args]
  if module is not None:
    runpy.run_module(module, run_name="__main__", alter_sys=True)
  else:
    runpy.run_path(script, run_name="__main__")


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Parse `[--module M | --script FILE] [--] ARGS...`, initialize, run the entry point."""
  argv = list(sys.argv[1:] if argv is None else argv)
  module, script = None, None
  while argv and argv[0] in ("--module", "--script"):
    if len(argv) < 2:
      raise UserError(f"{argv[0]} needs a value")
    if argv[0] == "--module":
      module = argv[1]
    else:
      script = argv[1]
    argv = argv[2:]
  if argv and argv[0] == "--":
    argv = argv[1:]
  if module is None and script is None:
    module = "clinical_t5.train"

  logging.use_absl_handler()
  logging.set_verbosity(logging.INFO)
  distributed = initialize_from_environment()
  code = _exit_code_of(run_entry_point, module, script, argv)
  if code != 0 and distributed:
    # NOTE: a normal exit would wait in jax.distributed's shutdown barrier until
    # every other process also exits (up to 5 minutes, or forever if they are
    # blocked in a collective). Exiting at once lets the launcher (or srun
    # --kill-on-bad-exit) see the failure and stop the others. Pending atexit
    # work is skipped; an unfinished async checkpoint is not finalized and is
    # therefore ignored on restore.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # pylint: disable=protected-access
  return code


def _exit_code_of(fn, *args) -> int:
  """Run fn(*args); return its exit status as `python -m` would report it."""
  try:
    fn(*args)
  except SystemExit as e:
    if e.code is None:
      return 0
    if isinstance(e.code, int):
      return e.code
    print(e.code, file=sys.stderr)
    return 1
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except BaseException:  # pylint: disable=broad-except
    traceback.print_exc()
    return 1
  return 0


if __name__ == "__main__":
  try:
    sys.exit(main())
  except UserError as e:
    print(f"clinical_t5.launch.worker: error: {e}", file=sys.stderr)
    sys.exit(2)
