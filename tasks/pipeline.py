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
"""

from typing import Mapping, Optional

import seqio
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
