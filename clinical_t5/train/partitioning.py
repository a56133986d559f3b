"""Device mesh, logical-axis rules and shardings for params, optimizer state and batches.

The mesh has two axes, ("data", "model"). Parameters carry logical axis names
(`nn.with_logical_partitioning`), and an ordered rule list maps each logical
name to a mesh axis, as in t5x's `standard_logical_axis_rules`:

  8 devices, num_partitions=4  ->  mesh {"data": 2, "model": 4}
  param "wi_0" names ("embed", "mlp"), shape [512, 1024]  ->  P(None, "model")
  same with fsdp=True                                      ->  P("data", "model")
  batch feature [batch, length]                            ->  P("data", None)

A dimension that the mesh axis does not divide is replicated, with a log line:
a tiny test model (4 heads) then runs unchanged on a mesh with 8 model shards.
"""

import dataclasses
from typing import Any, Optional, Sequence

from absl import logging
import flax.linen as nn
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np
import optax

from clinical_t5.errors import UserError
from clinical_t5.train.config import PartitionConfig

DATA, MODEL = "data", "model"

# NOTE: the t5x 1-D rules (`standard_logical_axis_rules`): data parallelism over
# "batch", tensor parallelism over vocab/mlp/heads; embed, kv and relative
# position buckets are replicated.
DEFAULT_RULES: tuple[tuple[str, Optional[str]], ...] = (
    ("batch", DATA),
    ("vocab", MODEL),
    ("mlp", MODEL),
    ("heads", MODEL),
    ("joined_kv", MODEL),
    ("embed", None),
    ("kv", None),
    ("length", None),
    ("relpos_buckets", None),
    ("layers", None),
    ("stack", None),
    ("mlp_activations", None),
)
# FSDP (t5x `parameter_partitioning_dims=2`): parameters also split over "data" along embed.
FSDP_RULES: tuple[tuple[str, Optional[str]], ...] = (("embed", DATA),)


@dataclasses.dataclass(frozen=True)
class Partitioner:
  """A mesh plus the logical rules that place arrays on it."""
  mesh: Mesh
  rules: tuple[tuple[str, Optional[str]], ...]

  @property
  def data_size(self) -> int:
    return self.mesh.shape[DATA]

  @property
  def model_size(self) -> int:
    return self.mesh.shape[MODEL]

  def replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, P())

  def batch_sharding(self) -> NamedSharding:
    """[batch, length] features: rows split over "data"."""
    return NamedSharding(self.mesh, P(DATA))

  def logical_to_spec(self, names: Sequence[Optional[str]], shape: Sequence[int]) -> P:
    """Map logical axis names of one array to a PartitionSpec.

    The first rule that names a mesh axis not yet used by this array wins; a
    mesh axis that does not divide the dimension is dropped (replicated).
    """
    used: set[str] = set()
    axes: list[Optional[str]] = []
    for name, dim in zip(names, shape):
      chosen = None
      for logical, mesh_axis in self.rules:
        if logical != name:
          continue
        if mesh_axis is None or mesh_axis in used:
          break
        if dim % self.mesh.shape[mesh_axis] != 0:
          logging.info("replicating a dim of size %d (logical %r): mesh axis %r has %d devices",
                       dim, name, mesh_axis, self.mesh.shape[mesh_axis])
          break
        chosen = mesh_axis
        break
      if chosen is not None:
        used.add(chosen)
      axes.append(chosen)
    return P(*axes)

  def param_specs(self, boxed_abstract_params: Any) -> Any:
    """PartitionSpecs for a tree of (possibly `nn.Partitioned`-boxed) abstract params."""
    def to_spec(leaf):
      if isinstance(leaf, nn.Partitioned):
        value = leaf.value
        if len(leaf.names) != value.ndim:
          return P()
        return self.logical_to_spec(leaf.names, value.shape)
      return P()
    return jax.tree.map(to_spec, boxed_abstract_params,
                        is_leaf=lambda x: isinstance(x, nn.Partitioned))

  def to_shardings(self, specs: Any) -> Any:
    return jax.tree.map(lambda spec: NamedSharding(self.mesh, spec), specs,
                        is_leaf=lambda x: isinstance(x, P))

  def opt_state_specs(self, tx: optax.GradientTransformation, abstract_opt_state: Any,
                      abstract_params: Any, param_specs: Any) -> Any:
    """PartitionSpecs for optimizer state, following the parameter each leaf belongs to.

    NOTE: a state leaf with the parameter's shape (Adam moments, unfactored
    Adafactor `v`) takes the parameter's spec. A leaf of another shape (the
    factored Adafactor `v_row`/`v_col` vectors, scalars) is replicated; this is
    the workaround for optax boxes carrying the full-rank names onto those
    vectors. Factored vectors are O(rows + cols), so replication costs little.
    """
    def per_param(state_leaf, param_leaf, spec):
      if getattr(state_leaf, "shape", None) == tuple(param_leaf.shape):
        return spec
      return P()

    is_spec_or_array = lambda x: isinstance(x, (P, jax.ShapeDtypeStruct, jax.Array))
    return optax.tree_map_params(
        tx, per_param, abstract_opt_state, abstract_params, param_specs,
        transform_non_params=lambda _: P(), is_leaf=is_spec_or_array)


def create_partitioner(config: PartitionConfig,
                       devices: Optional[Sequence[jax.Device]] = None) -> Partitioner:
  """Build the ("data", "model") mesh over all devices (all processes)."""
  devices = list(jax.devices() if devices is None else devices)
  count = len(devices)
  if count % config.num_partitions != 0:
    raise UserError(f"num_partitions={config.num_partitions} does not divide the {count} "
                    "devices; set partitioning.PartitionConfig.num_partitions to a divisor")
  local = jax.local_device_count()
  if config.num_partitions > local and jax.process_count() > 1:
    raise UserError(f"num_partitions={config.num_partitions} is larger than the {local} "
                    "devices of one host; the model axis must stay inside a host")

  # NOTE: jax.devices() is ordered by process, so each host owns a contiguous
  # block of data rows and can feed its own shard of the global batch.
  data = count // config.num_partitions
  grid = np.array(devices, dtype=object).reshape(data, config.num_partitions)
  mesh = Mesh(grid, (DATA, MODEL))
  rules = tuple(config.logical_axis_rules) + (FSDP_RULES if config.fsdp else ()) + DEFAULT_RULES
  logging.info("mesh: %s (%d processes, %d local devices), rules: %s",
               dict(mesh.shape), jax.process_count(), local, rules)
  return Partitioner(mesh=mesh, rules=rules)


def check_batch_layout(global_batch_size: int, partitioner: Partitioner,
                       num_microbatches: int = 1) -> None:
  """Raise UserError unless the global batch splits evenly over data shards and hosts."""
  data = partitioner.data_size
  if global_batch_size % (data * num_microbatches) != 0:
    raise UserError(
        f"BATCH_SIZE={global_batch_size} is not divisible by the data axis ({data} devices) "
        f"x num_microbatches ({num_microbatches}); use a multiple of {data * num_microbatches}")
  if global_batch_size % jax.process_count() != 0:
    raise UserError(f"BATCH_SIZE={global_batch_size} is not divisible by the "
                    f"{jax.process_count()} processes")
