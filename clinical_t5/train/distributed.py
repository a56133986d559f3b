"""Multi-process start-up: `jax.distributed.initialize` from flags or the environment.

  JAX_COORDINATOR_ADDRESS=10.0.0.1:1234 JAX_PROCESS_COUNT=2 JAX_PROCESS_INDEX=1 \\
    python -m clinical_t5.train --gin_file=...
  -> jax.distributed.initialize("10.0.0.1:1234", num_processes=2, process_id=1)

On a TPU VM (and under SLURM or Open MPI, which JAX detects itself), set
CLINICAL_T5_DISTRIBUTED=auto or pass nothing on a TPU pod: JAX finds the
coordinator on its own. Without any of these the run is single-process.
Every process must run the same command.
"""

import os
from typing import Optional

from absl import logging

from clinical_t5.errors import UserError

_initialized = False


def _env_int(name: str) -> Optional[int]:
  value = os.environ.get(name)
  if value in (None, ""):
    return None
  try:
    return int(value)
  except ValueError:
    raise UserError(f"environment variable {name}={value!r} must be an integer") from None


def _on_tpu_pod() -> bool:
  # NOTE: TPU VMs export TPU_WORKER_HOSTNAMES; with more than one host JAX
  # reads the coordinator from the TPU metadata itself.
  hosts = os.environ.get("TPU_WORKER_HOSTNAMES", "")
  return "," in hosts


def initialize(coordinator_address: Optional[str] = None, process_count: Optional[int] = None,
               process_index: Optional[int] = None) -> None:
  """Call jax.distributed.initialize once, when a multi-process run is configured."""
  global _initialized
  import jax  # pylint: disable=g-import-not-at-top
  if _initialized or jax.distributed.is_initialized():
    # A launcher (or an earlier call) already connected this process.
    _initialized = True
    return
  address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
  count = process_count if process_count is not None else _env_int("JAX_PROCESS_COUNT")
  index = process_index if process_index is not None else _env_int("JAX_PROCESS_INDEX")

  if address:
    if count is None or index is None:
      raise UserError("a coordinator address needs --process_count and --process_index "
                      "(or JAX_PROCESS_COUNT and JAX_PROCESS_INDEX)")
    if not 0 <= index < count:
      raise UserError(f"process index {index} is outside 0..{count - 1}")
    logging.info("distributed: process %d of %d, coordinator %s", index, count, address)
    # NOTE: explicit settings win; JAX's own SLURM/MPI detection would override them.
    jax.distributed.initialize(coordinator_address=address, num_processes=count,
                               process_id=index, cluster_detection_method="deactivate")
  elif os.environ.get("CLINICAL_T5_DISTRIBUTED") == "auto" or _on_tpu_pod():
    logging.info("distributed: automatic set-up (TPU pod, SLURM or Open MPI)")
    jax.distributed.initialize()
  else:
    return
  _initialized = True
  logging.info("distributed: process %d of %d, %d local / %d global devices",
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count())
