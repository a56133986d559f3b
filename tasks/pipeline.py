"""Deterministic, resumable batches from a registered task.

For a given (task, lengths, split, seed, shard, batch size) the batch stream
is fixed: every random step is seeded from `seed` (seqio's file shuffle,
example shuffle and the stateless span-corruption seeds), and tf.data keeps
element order deterministic. A restart therefore resumes exactly by skipping
the batches already consumed:

  batches = get_batches("mimic_span_corruption", {"inputs": 512, "targets": 114},
                        seed=0, batch_size=128, start_step=1000)
  # batch 0 of `batches` == batch 1000 of the run started with start_step=0

Skipping re-runs the pipeline for the skipped batches, which costs about
`start_step * batch_size / (examples per second)`; a tf.data iterator
checkpoint (`tf.train.Checkpoint(iterator=...)`) restores the same position
without that cost.

`install_full_length_packing()` speeds up seqio packing of full-length rows;
our trainer calls it, importing this module does not. Span-corruption examples are exactly 512 / 114
tokens, so `EncDecFeatureConverter(pack=True)` puts each in a row of its own:

  {"inputs": [512 ids], "targets": [114 ids]}
    -> {"inputs": ..., "inputs_segment_ids": [1] * 512, "inputs_positions": [0 .. 511],
        "targets": ..., "targets_segment_ids": [1] * 114, "targets_positions": [0 .. 113]}
"""

from typing import Mapping, Optional

import numpy as np
import seqio
from seqio import utils as seqio_utils
import tensorflow as tf

from clinical_t5.errors import UserError


def get_batches(task_name: str, feature_lengths: Mapping[str, int], split: str = "train", *,
                seed: int, batch_size: int, shard_index: int = 0, num_shards: int = 1,
                pack: Optional[bool] = None, shuffle: bool = True,
                num_epochs: Optional[int] = None, start_step: int = 0) -> tf.data.Dataset:
  """Return model-feature batches of `task_name` for one data shard, from `start_step` on.

  `pack` defaults to True for pretraining and False for fine-tuning tasks.
  `num_epochs=None` repeats forever; each epoch draws fresh span-corruption
  masks and a fresh shuffle, all derived from `seed`.
  """
  if not 0 <= shard_index < num_shards:
    raise UserError(f"invalid data shard {shard_index} of {num_shards}; the index must be in "
                    f"[0, {num_shards})")
  if batch_size < 1 or start_step < 0:
    raise UserError(f"invalid batch_size {batch_size} or start_step {start_step}")
  if pack is None:
    pack = task_name.startswith("mimic")
  dataset = seqio.get_dataset(
      task_name, task_feature_lengths=dict(feature_lengths), dataset_split=split,
      shuffle=shuffle, num_epochs=num_epochs, seed=seed,
      shard_info=seqio.ShardInfo(index=shard_index, num_shards=num_shards),
      batch_size=batch_size, feature_converter=seqio.EncDecFeatureConverter(pack=pack))
  options = tf.data.Options()
  options.deterministic = True
  dataset = dataset.with_options(options)
  return dataset.skip(start_step) if start_step else dataset


_SEQIO_TRIM_AND_PACK = seqio_utils.trim_and_pack_dataset


def _has_full_length_rows(dataset: tf.data.Dataset, feature_lengths: Mapping[str, int]) -> bool:
  """Whether every packed feature is int32 with the static shape [its packed length]."""
  spec = dataset.element_spec
  for key, length in feature_lengths.items():
    feature = spec.get(key) if isinstance(spec, Mapping) else None
    if (not isinstance(feature, tf.TensorSpec) or feature.dtype != tf.int32
        or not isinstance(length, int) or feature.shape.as_list() != [length]):
      return False
  return True


def trim_and_pack_dataset(dataset: tf.data.Dataset, feature_lengths: Mapping[str, int],
                          use_custom_ops: bool = False) -> tf.data.Dataset:
  """`seqio.utils.trim_and_pack_dataset` with a one-map path for full-length rows.

  When every packed feature has the static shape [its packed length], no two
  examples fit in one row, and seqio's packer (a tf.while_loop over batches
  of 512 examples) emits each example alone: segment ids all 1, positions
  0 .. length - 1, features not in `feature_lengths` dropped. This path
  builds the same rows with one map. seqio counts the non-zero ids of a row
  as its length, so a full-length row that contains the padding id 0 would
  be cut there; such a row raises InvalidArgumentError here instead.
  Every other dataset goes to seqio's packer unchanged.
  """
  if use_custom_ops or not _has_full_length_rows(dataset, feature_lengths):
    return _SEQIO_TRIM_AND_PACK(dataset, feature_lengths, use_custom_ops)

  def one_row(example):
    row = {}
    for key, length in feature_lengths.items():
      tokens = example[key]                                              # [length]
      check = tf.debugging.assert_none_equal(
          tokens, 0, message=f"a full-length '{key}' row contains the padding id 0")
      with tf.control_dependencies([check]):
        row[key] = tf.identity(tokens)
      # NOTE: constants, not tf.ones/tf.range, because every op in this
      # per-example function costs CPU time for each of millions of rows.
      row[f"{key}_segment_ids"] = tf.constant(np.ones(length, np.int32))           # [length]
      row[f"{key}_positions"] = tf.constant(np.arange(length, dtype=np.int32))     # [length]
    return row

  return dataset.map(one_row, num_parallel_calls=tf.data.AUTOTUNE)


def install_full_length_packing() -> None:
  """Make seqio's feature converters pack through `trim_and_pack_dataset` above.

  seqio's FeatureConverter looks up `seqio.utils.trim_and_pack_dataset` at
  call time, so replacing that attribute reaches every converter in the
  process, t5x's included. Importing this package never does it: a binary
  opts in (our trainer does, and logs it), so a t5x user's process keeps
  seqio's packer unless it calls this too. Idempotent.
  """
  seqio_utils.trim_and_pack_dataset = trim_and_pack_dataset
