"""Tests of the SLURM variables -> jax.distributed mapping."""

import re

import pytest

from clinical_t5.errors import UserError
from clinical_t5.launch import slurm
from clinical_t5.launch import worker


def _env(**overrides):
  """The variables srun sets for task 0 of a 2-node job with 8 GPUs and 8 tasks per node."""
  env = {
      "SLURM_JOB_ID": "4242",
      "SLURM_JOB_NODELIST": "node[001-002]",
      "SLURM_STEP_NODELIST": "node[001-002]",
      "SLURM_NTASKS": "16",
      "SLURM_PROCID": "0",
      "SLURM_LOCALID": "0",
      "SLURM_NODEID": "0",
      "SLURM_STEP_TASKS_PER_NODE": "8(x2)",
      "SLURM_GPUS_ON_NODE": "8",
  }
  env.update({k: v for k, v in overrides.items() if v is not None})
  for k, v in overrides.items():
    if v is None:
      env.pop(k, None)
  return env


@pytest.mark.parametrize("nodelist, expected", [
    ("node001", ["node001"]),
    ("node[001-004,010]", ["node001", "node002", "node003", "node004", "node010"]),
    ("gpu7,node[1-2]", ["gpu7", "node1", "node2"]),
    ("a[8-11]", ["a8", "a9", "a10", "a11"]),
    ("rack[1-2]-n[01-02]", ["rack1-n01", "rack1-n02", "rack2-n01", "rack2-n02"]),
    ("n[098-101],x", ["n098", "n099", "n100", "n101", "x"]),
])
def test_expand_nodelist(nodelist, expected):
  assert slurm.expand_nodelist(nodelist) == expected


@pytest.mark.parametrize("nodelist", ["node[1-", "node]1[", "node[a-b]", "node[3-1]", "a,,b", ""])
def test_expand_nodelist_rejects_malformed(nodelist):
  with pytest.raises(UserError):
    slurm.expand_nodelist(nodelist)


def test_expand_tasks_per_node():
  assert slurm.expand_tasks_per_node("8(x2),4") == [8, 8, 4]
  assert slurm.expand_tasks_per_node("1") == [1]
  with pytest.raises(UserError):
    slurm.expand_tasks_per_node("8x2")


def test_per_gpu_mode_on_8_gpu_nodes():
  # Global rank 9 = node 1, local rank 1.
  task = slurm.task_from_environment(_env(SLURM_PROCID="9", SLURM_LOCALID="1", SLURM_NODEID="1"))
  assert task.coordinator_address == "node001:61586"  # 61440 + 4242 % 4096, as JAX computes it
  assert task.num_processes == 16
  assert task.process_id == 9
  assert task.node == "node002"
  assert task.mode == "per-gpu"
  assert task.cuda_visible_devices == "1"


def test_every_local_rank_gets_its_own_gpu():
  devices = [slurm.task_from_environment(_env(SLURM_PROCID=str(r), SLURM_LOCALID=str(r)))
             .cuda_visible_devices for r in range(8)]
  assert devices == [str(r) for r in range(8)]


def test_per_node_mode_keeps_all_gpus():
  env = _env(SLURM_NTASKS="2", SLURM_STEP_TASKS_PER_NODE="1(x2)", SLURM_PROCID="1",
             SLURM_NODEID="1", CUDA_VISIBLE_DEVICES="0,1,2,3,4,5,6,7")
  task = slurm.task_from_environment(env)
  assert task.mode == "per-node"
  assert task.num_processes == 2
  assert task.process_id == 1
  assert task.cuda_visible_devices is None
  assert "CUDA_VISIBLE_DEVICES" not in task.environment()


def test_gpu_groups_when_tasks_share_a_node():
  # 2 tasks on a 8-GPU node: 4 GPUs each, from the list SLURM exported.
  env = _env(SLURM_NTASKS="4", SLURM_STEP_TASKS_PER_NODE="2(x2)", SLURM_PROCID="3",
             SLURM_LOCALID="1", SLURM_NODEID="1", CUDA_VISIBLE_DEVICES="0,1,2,3,4,5,6,7")
  task = slurm.task_from_environment(env)
  assert task.mode == "per-gpu-group"
  assert task.cuda_visible_devices == "4,5,6,7"


def test_slurm_bound_gpu_is_kept():
  # With --gpus-per-task=1 SLURM already exports one GPU per task.
  task = slurm.task_from_environment(_env(SLURM_PROCID="3", SLURM_LOCALID="3",
                                          CUDA_VISIBLE_DEVICES="3"))
  assert task.cuda_visible_devices == "3"


def test_partial_node_allocation_uses_slurm_gpu_ids():
  # The job got GPUs 4-7 of a shared node; local rank 2 must get GPU 6, not GPU 2.
  env = _env(SLURM_NTASKS="4", SLURM_STEP_TASKS_PER_NODE="4", SLURM_JOB_NODELIST="n1",
             SLURM_STEP_NODELIST="n1", SLURM_GPUS_ON_NODE="4", SLURM_PROCID="2",
             SLURM_LOCALID="2", CUDA_VISIBLE_DEVICES="4,5,6,7")
  assert slurm.task_from_environment(env).cuda_visible_devices == "6"


def test_uneven_tasks_per_node():
  # 3 tasks: 2 on node a1, 1 on node a2; global rank 2 is alone on a2.
  env = _env(SLURM_JOB_NODELIST="a[1-2]", SLURM_STEP_NODELIST="a[1-2]", SLURM_NTASKS="3",
             SLURM_STEP_TASKS_PER_NODE="2,1", SLURM_PROCID="2", SLURM_LOCALID="0",
             SLURM_NODEID="1", SLURM_GPUS_ON_NODE="2", CUDA_VISIBLE_DEVICES="0,1")
  task = slurm.task_from_environment(env)
  assert task.node == "a2"
  assert task.mode == "per-node"
  assert task.coordinator_address.startswith("a1:")


def test_step_nodelist_takes_precedence():
  task = slurm.task_from_environment(_env(SLURM_JOB_NODELIST="big[1-9]", SLURM_STEP_NODELIST="node[001-002]"))
  assert task.coordinator_address.startswith("node001:")


def test_explicit_port():
  assert slurm.task_from_environment(_env(), port=1234).coordinator_address == "node001:1234"


def test_cpu_only_job():
  env = _env(SLURM_GPUS_ON_NODE=None)
  task = slurm.task_from_environment(env)
  assert task.mode == "cpu"
  assert task.cuda_visible_devices is None


def test_environment_feeds_the_worker():
  task = slurm.task_from_environment(_env(SLURM_PROCID="9", SLURM_LOCALID="1", SLURM_NODEID="1"))
  env = task.environment()
  assert worker.read_environment(env) == ("node001:61586", 16, 9)
  assert env["CUDA_VISIBLE_DEVICES"] == "1"


@pytest.mark.parametrize("overrides, message", [
    ({"SLURM_NTASKS": "sixteen"}, "SLURM_NTASKS='sixteen' is not a non-negative integer"),
    ({"SLURM_PROCID": "1.5"}, "SLURM_PROCID='1.5'"),
    ({"SLURM_PROCID": "16"}, "outside 0..15"),
    ({"SLURM_LOCALID": "8"}, "SLURM_LOCALID=8 is outside 0..7"),
    ({"SLURM_JOB_NODELIST": None, "SLURM_STEP_NODELIST": None}, "SLURM_JOB_NODELIST is not set"),
    ({"SLURM_NTASKS": None}, "SLURM_STEP_NUM_TASKS is not set"),
    ({"SLURM_GPUS_ON_NODE": "6"}, "do not divide evenly"),
    ({"SLURM_STEP_TASKS_PER_NODE": "8(x3)"}, "describes 3 nodes"),
    ({"SLURM_NODEID": "2"}, "has only 2 nodes"),
    ({"SLURM_STEP_TASKS_PER_NODE": "4(x2)", "SLURM_LOCALID": "0"}, "adds up to 8 tasks"),
    ({"CUDA_VISIBLE_DEVICES": "0,1"}, "lists 2 GPUs but SLURM_GPUS_ON_NODE is 8"),
])
def test_bad_slurm_variables(overrides, message):
  with pytest.raises(UserError, match=re.escape(message)):
    slurm.task_from_environment(_env(**overrides))


def test_per_node_mode_rejects_many_tasks():
  with pytest.raises(UserError, match="one task per node"):
    slurm.task_from_environment(_env(), mode="per-node")


def test_per_gpu_mode_rejects_gpu_groups():
  env = _env(SLURM_NTASKS="4", SLURM_STEP_TASKS_PER_NODE="2(x2)")
  with pytest.raises(UserError, match="one task per GPU"):
    slurm.task_from_environment(env, mode="per-gpu")
