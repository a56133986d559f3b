"""Derive the `jax.distributed` set-up of one SLURM task from its environment.

Under `srun`, every task gets the same job-wide variables and its own rank.
This module turns them into the three `jax.distributed.initialize` arguments
and the GPUs the process may use:

  SLURM_JOB_ID=4242  SLURM_STEP_NODELIST=node[001-002]  SLURM_NTASKS=16
  SLURM_PROCID=9  SLURM_LOCALID=1  SLURM_NODEID=1  SLURM_STEP_TASKS_PER_NODE=8(x2)
  SLURM_GPUS_ON_NODE=8
  ->  coordinator_address="node001:61586", num_processes=16, process_id=9,
      CUDA_VISIBLE_DEVICES="1"          (mode "per-gpu": one process per GPU)

With one task per node (`--ntasks-per-node=1`) the mode is "per-node": each
process keeps every GPU of its node. With k GPUs per task the mode is
"per-gpu-group" and local rank r gets GPUs r*k .. r*k+k-1. Giving each process
its own GPUs through CUDA_VISIBLE_DEVICES, before CUDA starts, is what keeps
the processes of one node from all allocating memory on GPU 0.

Why not `jax.distributed.initialize()` with no arguments? Without explicit
`local_device_ids`, JAX's own SLURM detection (jax 0.10) restricts a process to
the one GPU numbered by its local rank. That silently leaves 7 of 8 GPUs idle
in the per-node mode.
"""

import dataclasses
import re
from typing import Mapping, Optional

from clinical_t5.errors import UserError

MODES = ("auto", "per-node", "per-gpu")

# NOTE: the same port rule as JAX's SlurmCluster (jax 0.10). The job id picks
# one of the top 4096 ports, so every task of a job computes the same port
# without talking. Two jobs that share a first node collide only when their
# ids are equal modulo 4096; pass --port then.
_PORT_RANGE_START = 65535 - 2**12 + 1


@dataclasses.dataclass(frozen=True)
class SlurmTask:
  """The distributed set-up of one SLURM task.

  Attributes:
    coordinator_address: "host:port" of process 0, the jax.distributed coordinator.
    num_processes: processes in the job step (SLURM_NTASKS).
    process_id: this process, 0 .. num_processes - 1 (SLURM_PROCID).
    local_rank: this process among the tasks of its node (SLURM_LOCALID).
    node: this task's host name.
    tasks_on_node: tasks that SLURM started on this node.
    gpus_on_node: GPUs SLURM gave this job on this node (0 when none or unknown).
    mode: "per-node", "per-gpu", "per-gpu-group", or "cpu" when the node has no GPUs.
    cuda_visible_devices: the value for CUDA_VISIBLE_DEVICES, or None to leave it alone.
  """
  coordinator_address: str
  num_processes: int
  process_id: int
  local_rank: int
  node: str
  tasks_on_node: int
  gpus_on_node: int
  mode: str
  cuda_visible_devices: Optional[str]

  def __post_init__(self):
    if not 0 <= self.process_id < self.num_processes:
      raise UserError(f"SLURM_PROCID={self.process_id} is outside 0..{self.num_processes - 1} "
                      f"(SLURM_NTASKS={self.num_processes}); start the command with srun")
    if not 0 <= self.local_rank < self.tasks_on_node:
      raise UserError(f"SLURM_LOCALID={self.local_rank} is outside 0..{self.tasks_on_node - 1} "
                      f"({self.tasks_on_node} tasks on node {self.node}); start the command with srun")

  def environment(self) -> dict[str, str]:
    """Return the variables that `clinical_t5.launch.worker` reads, plus CUDA_VISIBLE_DEVICES."""
    from clinical_t5.launch import worker  # pylint: disable=g-import-not-at-top
    env = worker.distributed_environment(self.coordinator_address, self.num_processes,
                                         self.process_id)
    if self.cuda_visible_devices is not None:
      env["CUDA_VISIBLE_DEVICES"] = self.cuda_visible_devices
    return env


def _split_top_level(text: str) -> list[str]:
  """Split at commas that are not inside brackets: "a[1,2],b" -> ["a[1,2]", "b"]."""
  parts, depth, start = [], 0, 0
  for i, ch in enumerate(text):
    if ch == "[":
      depth += 1
    elif ch == "]":
      depth -= 1
      if depth < 0:
        raise ValueError("unbalanced ']'")
    elif ch == "," and depth == 0:
      parts.append(text[start:i])
      start = i + 1
  if depth != 0:
    raise ValueError("unbalanced '['")
  parts.append(text[start:])
  return parts


def _expand_range_list(body: str) -> list[str]:
  """Expand a bracket body: "001-003,010" -> ["001", "002", "003", "010"] (zero padding kept)."""
  values = []
  for item in body.split(","):
    match = re.fullmatch(r"(\d+)(?:-(\d+))?", item.strip())
    if not match:
      raise ValueError(f"invalid range {item!r}")
    first, last = match.group(1), match.group(2)
    if last is None:
      values.append(first)
      continue
    if int(last) < int(first):
      raise ValueError(f"descending range {item!r}")
    width = len(first)
    values += [str(n).zfill(width) for n in range(int(first), int(last) + 1)]
  return values


def _expand_host_pattern(pattern: str) -> list[str]:
  """Expand one host pattern, each bracket group in turn: "r[1-2]n[1-2]" -> r1n1 r1n2 r2n1 r2n2."""
  match = re.search(r"\[([^\[\]]*)\]", pattern)
  if match is None:
    if "[" in pattern or "]" in pattern:
      raise ValueError("unbalanced brackets")
    return [pattern]
  prefix, suffix = pattern[:match.start()], pattern[match.end():]
  hosts = []
  for value in _expand_range_list(match.group(1)):
    hosts += _expand_host_pattern(prefix + value + suffix)
  return hosts


def expand_nodelist(nodelist: str) -> list[str]:
  """Expand a SLURM host list: "node[001-003,010],gpu7" -> node001 node002 node003 node010 gpu7."""
  text = nodelist.strip()
  if not text:
    raise UserError("the SLURM node list is empty; start the command inside an allocation with srun")
  try:
    hosts = []
    for part in _split_top_level(text):
      if not part:
        raise ValueError("empty host name")
      hosts += _expand_host_pattern(part)
  except ValueError as e:
    raise UserError(f"cannot parse SLURM node list {nodelist!r}: {e}; expected a list like "
                    "node[001-004,010],gpu7") from None
  return hosts


def expand_tasks_per_node(value: str) -> list[int]:
  """Expand SLURM's tasks-per-node notation: "8(x2),4" -> [8, 8, 4]."""
  counts = []
  for item in value.split(","):
    match = re.fullmatch(r"\s*(\d+)(?:\(x(\d+)\))?\s*", item)
    if not match:
      raise UserError(f"cannot parse SLURM tasks per node {value!r}; expected a list like 8(x2),4")
    counts += [int(match.group(1))] * int(match.group(2) or 1)
  return counts


def _first(env: Mapping[str, str], names: tuple[str, ...]) -> Optional[tuple[str, str]]:
  for name in names:
    if env.get(name, "").strip():
      return name, env[name].strip()
  return None


def _integer(env: Mapping[str, str], names: tuple[str, ...], *, required: bool = True,
             default: Optional[int] = None) -> Optional[int]:
  """Read the first set variable of `names` as a non-negative integer; UserError otherwise."""
  found = _first(env, names)
  if found is None:
    if required:
      raise UserError(f"{names[0]} is not set; run this command inside a SLURM job step "
                      "(srun ... clinical-t5 launch slurm-env ...)")
    return default
  name, value = found
  if not re.fullmatch(r"\d+", value):
    raise UserError(f"{name}={value!r} is not a non-negative integer; check the srun/sbatch "
                    "options that set it")
  return int(value)


def _visible_gpus(env: Mapping[str, str], gpus_on_node: int) -> list[str]:
  """Return the node's GPU ids: CUDA_VISIBLE_DEVICES when SLURM set it, else 0..n-1."""
  visible = env.get("CUDA_VISIBLE_DEVICES", "").strip()
  if visible:
    return [v.strip() for v in visible.split(",") if v.strip()]
  return [str(i) for i in range(gpus_on_node)]


def _assign_gpus(mode: str, local_rank: int, tasks_on_node: int, gpus_on_node: int,
                 env: Mapping[str, str], node: str) -> tuple[str, Optional[str]]:
  """Pick the effective mode and this task's CUDA_VISIBLE_DEVICES value (None: leave alone)."""
  if gpus_on_node == 0:
    if mode != "auto":
      raise UserError(f"--mode {mode} needs GPUs, but SLURM_GPUS_ON_NODE is 0 or unset on "
                      f"node {node}; request GPUs with --gpus-per-node, or use --mode auto")
    return "cpu", None

  if mode == "per-node" or (mode == "auto" and tasks_on_node == 1):
    if tasks_on_node != 1:
      raise UserError(f"--mode per-node needs one task per node, but node {node} runs "
                      f"{tasks_on_node}; use --ntasks-per-node=1 or --mode per-gpu")
    return "per-node", None

  if gpus_on_node % tasks_on_node != 0:
    raise UserError(f"node {node} has {gpus_on_node} GPUs for {tasks_on_node} tasks, which "
                    "do not divide evenly; use --ntasks-per-node equal to --gpus-per-node")
  per_task = gpus_on_node // tasks_on_node
  if mode == "per-gpu" and per_task != 1:
    raise UserError(f"--mode per-gpu needs one task per GPU, but node {node} has "
                    f"{gpus_on_node} GPUs for {tasks_on_node} tasks; use --ntasks-per-node="
                    f"{gpus_on_node}")
  effective = "per-gpu" if per_task == 1 else "per-gpu-group"

  visible = _visible_gpus(env, gpus_on_node)
  if len(visible) == per_task:
    # SLURM already bound GPUs to this task (--gpus-per-task, --gpu-bind).
    return effective, ",".join(visible)
  if len(visible) != gpus_on_node:
    raise UserError(f"CUDA_VISIBLE_DEVICES lists {len(visible)} GPUs but SLURM_GPUS_ON_NODE "
                    f"is {gpus_on_node} on node {node}; unset CUDA_VISIBLE_DEVICES or fix the "
                    "GPU request")
  mine = visible[local_rank * per_task:(local_rank + 1) * per_task]
  return effective, ",".join(mine)


def task_from_environment(env: Mapping[str, str], *, mode: str = "auto",
                          port: Optional[int] = None) -> SlurmTask:
  """Build the SlurmTask of the calling process from SLURM variables (see module docstring)."""
  if mode not in MODES:
    raise UserError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")

  found = _first(env, ("SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST"))
  if found is None:
    raise UserError("SLURM_JOB_NODELIST is not set; run this command inside a SLURM job "
                    "step (srun ... clinical-t5 launch slurm-env ...)")
  nodes = expand_nodelist(found[1])

  num_processes = _integer(env, ("SLURM_STEP_NUM_TASKS", "SLURM_NTASKS", "SLURM_NPROCS"))
  if num_processes < 1:
    raise UserError(f"SLURM_NTASKS={num_processes}; a job step needs at least one task")
  process_id = _integer(env, ("SLURM_PROCID",))
  local_rank = _integer(env, ("SLURM_LOCALID",))
  node_index = _integer(env, ("SLURM_NODEID",), required=False, default=0)
  if node_index >= len(nodes):
    raise UserError(f"SLURM_NODEID={node_index} but the node list {found[1]!r} has only "
                    f"{len(nodes)} nodes")

  tasks_found = _first(env, ("SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE"))
  if tasks_found is not None:
    per_node = expand_tasks_per_node(tasks_found[1])
    if len(per_node) != len(nodes):
      raise UserError(f"{tasks_found[0]}={tasks_found[1]!r} describes {len(per_node)} nodes but "
                      f"the node list {found[1]!r} has {len(nodes)}; check the srun options")
    tasks_on_node = per_node[node_index]
    if sum(per_node) != num_processes:
      raise UserError(f"{tasks_found[0]}={tasks_found[1]!r} adds up to {sum(per_node)} tasks "
                      f"but SLURM_NTASKS is {num_processes}; check the srun options")
  else:
    tasks_on_node = _integer(env, ("SLURM_NTASKS_PER_NODE",), required=False, default=1)

  gpus_on_node = _integer(env, ("SLURM_GPUS_ON_NODE",), required=False, default=0)
  node = nodes[node_index]
  effective, cuda = _assign_gpus(mode, local_rank, tasks_on_node, gpus_on_node, env, node)

  if port is None:
    job_id = _integer(env, ("SLURM_JOB_ID", "SLURM_JOBID"))
    port = _PORT_RANGE_START + job_id % 2**12
  return SlurmTask(
      coordinator_address=f"{nodes[0]}:{port}",
      num_processes=num_processes,
      process_id=process_id,
      local_rank=local_rank,
      node=node,
      tasks_on_node=tasks_on_node,
      gpus_on_node=gpus_on_node,
      mode=effective,
      cuda_visible_devices=cuda,
  )
