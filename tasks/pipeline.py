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

`BlockEncDecFeatureConverter` gives the rows of `seqio.EncDecFeatureConverter`
but converts 128 rows per map; `get_batches` and our trainer use it.
Span-corruption examples are exactly 512 / 114 tokens, so with pack=True
each becomes a row of its own:

  {"inputs": [512 ids], "targets": [114 ids]}
    -> {"encoder_input_tokens": ..., "encoder_segment_ids": [1] * 512,
        "encoder_positions": [0 .. 511], "decoder_target_tokens": ...,
        "decoder_input_tokens": [0, targets[0] .. targets[112]], ...}

`install_full_length_packing()` gives seqio's own converters a one-map path
for such rows; our trainer calls it, importing this module does not.
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
  dataset = get_dataset(
      task_name, dict(feature_lengths), dataset_split=split, shuffle=shuffle,
      num_epochs=num_epochs, seed=seed,
      shard_info=seqio.ShardInfo(index=shard_index, num_shards=num_shards),
      batch_size=batch_size, pack=pack)
  options = tf.data.Options()
  options.deterministic = True
  dataset = dataset.with_options(options)
  return dataset.skip(start_step) if start_step else dataset


def get_dataset(mixture_or_task_name: str, task_feature_lengths: Mapping[str, int], *,
                batch_size: int, pack: bool, dataset_split: str = "train",
                use_cached: bool = False, shuffle: bool = False, num_epochs: Optional[int] = 1,
                shard_info: Optional[seqio.ShardInfo] = None, seed: Optional[int] = None,
                trim_output_features: bool = True) -> tf.data.Dataset:
  """`seqio.get_dataset` with `BlockEncDecFeatureConverter(pack=pack)`, converting whole batches.

  The batches equal those of

    seqio.get_dataset(name, task_feature_lengths, dataset_split=..., ...,
                      feature_converter=BlockEncDecFeatureConverter(pack=pack),
                      batch_size=batch_size)

  but where no row needs packing (pack=False, or every row full length) each
  batch is converted in one map (`BlockEncDecFeatureConverter.convert_batches`).
  Our trainer reads its data through this function.
  """
  provider = seqio.get_mixture_or_task(mixture_or_task_name)
  dataset = provider.get_dataset(
      task_feature_lengths, split=dataset_split, use_cached=use_cached, shuffle=shuffle,
      seed=seed, shard_info=shard_info, num_epochs=num_epochs,
      trim_output_features=trim_output_features)
  converter = BlockEncDecFeatureConverter(pack=pack)
  return converter.convert_batches(dataset, task_feature_lengths, batch_size)


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
      row[key] = assert_no_padding(example[key], key)                    # [length]
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


# NOTE: 128 rows per block keep the per-element tf.data cost (about 2 to 3
# microseconds each for batch and unbatch on a busy 2-core x86-64 machine)
# far below the cost of one per-example map (about 25 microseconds there).
CONVERTER_BLOCK_ROWS = 128


class BlockEncDecFeatureConverter(seqio.EncDecFeatureConverter):
  """`seqio.EncDecFeatureConverter` that converts blocks of rows instead of one row per map.

  The output equals seqio's element for element, with pack=True or False.
  It batches the rows, builds the model features of a whole block in one
  vectorized map and unbatches them again:

    {"inputs": [12 ids], "targets": [5 ids]} x 128
      -> batch -> one map -> unbatch
      -> {"encoder_input_tokens": [12], "decoder_input_tokens": [5], ...} x 128

  Rows that already have the packed length (every span-corruption example)
  become one-row packs inside that map. With pack=True, other rows go to
  `seqio.utils.trim_and_pack_dataset` first. With pack=False, rows are padded
  per block. A converter with passthrough features or custom packing ops
  converts as seqio does.

  One difference: seqio's packer takes the non-zero ids of a row as its
  length, so it would cut a full-length row that contains the padding id 0.
  Here such a row raises InvalidArgumentError, as `trim_and_pack_dataset` does.

  `convert_batches` goes one step further for the trainer: it converts each
  batch in one map, with no unbatch and batch steps around it.
  """

  # Rows per output batch while `convert_batches` builds a dataset, else None.
  _batch_rows: Optional[int] = None

  def convert_batches(self, ds: tf.data.Dataset, task_feature_lengths: Mapping[str, int],
                      batch_size: int) -> tf.data.Dataset:
    """Return `self(ds, task_feature_lengths).batch(batch_size, drop_remainder=True)`.

    Where no row needs packing (pack=False, or every row has the packed
    length), the rows are batched first and each batch of model features is
    built in one map; the batches are equal. Otherwise rows are converted
    and then batched.
    """
    lengths = {key: task_feature_lengths[key] for key in ("inputs", "targets")
               if key in task_feature_lengths}
    batchable = (len(lengths) == 2 and all(key in ds.element_spec for key in lengths)
                 and self._block_path(ds, lengths)
                 and (not self.pack or _has_full_length_rows(ds, lengths)))
    if not batchable:
      return self(ds, task_feature_lengths).batch(batch_size, drop_remainder=True)
    self._batch_rows = batch_size
    try:
      return self(ds, task_feature_lengths)
    finally:
      self._batch_rows = None

  def _block_path(self, ds: Optional[tf.data.Dataset] = None,
                  lengths: Optional[Mapping[str, int]] = None) -> bool:
    """Return whether to convert in blocks (False sends rows to seqio's own conversion)."""
    if self._passthrough_features or self._use_custom_packing_ops:
      return False
    if ds is None:
      return True
    spec = ds.element_spec
    return all(spec[key].shape.rank == 1 and (spec[key].shape[0] or 0) <= lengths[key]
               for key in ("inputs", "targets"))

  def _validate_dataset(self, ds, expected_features, expected_lengths, strict, error_label):
    if self._batch_rows and error_label == "output_validation":
      return _validate_batches(ds, expected_features, expected_lengths, self._batch_rows)
    # seqio's static checks (features, dtypes, ranks) run and raise here.
    checked = super()._validate_dataset(ds, expected_features, expected_lengths, strict,
                                        error_label)
    if not self._apply_length_check or not self._block_path():
      return checked
    # NOTE: seqio checks lengths with one assertion map per row. This class
    # drops that map only where the same lengths are enforced otherwise: by
    # static shapes (the outputs of `_convert_block` and every span-corruption
    # example), or by the block assertion of `_pad_block` (pack=False inputs).
    lengths = {key: expected_lengths[key] for key in expected_features
               if key in expected_lengths and expected_features[key].rank == 1}
    if lengths_fit_statically(ds, lengths, exact=strict):
      return ds
    if not strict and not self.pack and self._block_path(ds, expected_lengths):
      return ds
    return checked

  def _convert_features(self, ds: tf.data.Dataset,
                        task_feature_lengths: Mapping[str, int]) -> tf.data.Dataset:
    if not self._block_path(ds, task_feature_lengths):
      return super()._convert_features(ds, task_feature_lengths)
    lengths = {key: task_feature_lengths[key] for key in ("inputs", "targets")}
    if self._batch_rows:
      return self._convert_to_batches(ds, lengths, self._batch_rows)
    if not self.pack:
      blocks = ds.padded_batch(CONVERTER_BLOCK_ROWS)
      return blocks.map(lambda block: self._convert_block(block, lengths, pad=True)).unbatch()
    if _has_full_length_rows(ds, lengths):
      blocks = ds.padded_batch(CONVERTER_BLOCK_ROWS)
      return blocks.map(lambda block: self._convert_block(block, lengths, one_row_packs=True)
                        ).unbatch()
    packed = seqio_utils.trim_and_pack_dataset(ds, lengths, self._use_custom_packing_ops)
    blocks = packed.batch(CONVERTER_BLOCK_ROWS)
    return blocks.map(lambda block: self._convert_block(block, lengths)).unbatch()

  def _convert_to_batches(self, ds: tf.data.Dataset, lengths: Mapping[str, int],
                          batch_size: int) -> tf.data.Dataset:
    """Convert batches of `batch_size` rows, each in one map; drop a final partial batch."""
    # NOTE: the partial batch is converted before it is dropped, so that its
    # rows are checked (length, padding id) as seqio checks every row.
    blocks = ds.padded_batch(batch_size)
    converted = blocks.map(lambda block: self._convert_block(
        block, lengths, pad=not self.pack, one_row_packs=self.pack))
    full = converted.filter(lambda batch: tf.shape(batch["decoder_target_tokens"])[0] == batch_size)
    return full.map(lambda batch: {key: tf.ensure_shape(value, [batch_size] + value.shape[1:])
                                   for key, value in batch.items()})

  def _convert_block(self, block: Mapping[str, tf.Tensor], lengths: Mapping[str, int], *,
                     pad: bool = False, one_row_packs: bool = False) -> dict[str, tf.Tensor]:
    """Build the model features of a block of rows [rows, length]."""
    block = dict(block)
    rows = tf.shape(block["targets"])[0]
    if pad:
      for key, length in lengths.items():
        block[key] = _pad_block(block[key], length, key)
    if one_row_packs:
      for key, length in lengths.items():
        block[key] = assert_no_padding(block[key], key)
        block[f"{key}_segment_ids"] = tf.ones([rows, length], tf.int32)
        block[f"{key}_positions"] = tf.tile(tf.range(length)[tf.newaxis, :], [rows, 1])
    targets = block["targets"]
    segment_ids = block.get("targets_segment_ids")
    features = {
        "encoder_input_tokens": block["inputs"],
        "decoder_target_tokens": targets,
        "decoder_input_tokens": _autoregressive_inputs(targets, segment_ids, self.bos_id),
        "decoder_loss_weights": tf.cast(tf.not_equal(targets, 0), tf.int32),
    }
    if self.pack:
      features["encoder_segment_ids"] = block["inputs_segment_ids"]
      features["decoder_segment_ids"] = segment_ids
      features["encoder_positions"] = block["inputs_positions"]
      features["decoder_positions"] = block["targets_positions"]
    model_lengths = self.get_model_feature_lengths(lengths)
    return {key: tf.ensure_shape(value, [None, model_lengths[key]])
            for key, value in features.items()}


def lengths_fit_statically(ds: tf.data.Dataset, lengths: Mapping[str, int], *,
                            exact: bool) -> bool:
  """Return whether each feature in `lengths` has a static 1-D shape within its length.

  With `exact`, the shape must equal the length.
  """
  spec = ds.element_spec
  for key, length in lengths.items():
    shape = spec[key].shape
    if shape.rank != 1 or shape[0] is None or shape[0] > length:
      return False
    if exact and shape[0] != length:
      return False
  return True


def _validate_batches(ds: tf.data.Dataset, expected_features: Mapping[str, object],
                      expected_lengths: Mapping[str, int], batch_size: int) -> tf.data.Dataset:
  """Check batches as seqio's output validation checks rows: every feature, its dtype and shape."""
  spec = ds.element_spec
  for key, feature in expected_features.items():
    if key not in spec:
      raise ValueError(f"Dataset is missing an expected feature during output_validation "
                       f"validation: '{key}'")
    if spec[key].dtype != feature.dtype:
      raise ValueError(f"Dataset has incorrect type for feature '{key}' during output_validation "
                       f"validation: Got {spec[key].dtype.name}, expected {feature.dtype.name}")
    expected_shape = [batch_size, expected_lengths[key]]
    if spec[key].shape.as_list() != expected_shape:
      raise ValueError(f"Feature '{key}' has shape {spec[key].shape} instead of {expected_shape} "
                       "during output_validation validation")
  return ds


def _pad_block(tokens: tf.Tensor, length: int, key: str) -> tf.Tensor:
  """Pad a padded batch [rows, width] to [rows, length], and fail at run time if width > length."""
  check = tf.debugging.assert_less_equal(
      tf.shape(tokens, out_type=tf.int64)[1], tf.constant(length, tf.int64),
      message=f"Feature '{key}' has length not less than or equal to the expected length of "
              f"{length} during input_validation validation")
  with tf.control_dependencies([check]):
    padding = length - tf.shape(tokens)[1]
    return tf.pad(tokens, [[0, 0], [0, padding]])


def assert_no_padding(tokens: tf.Tensor, key: str) -> tf.Tensor:
  """Return `tokens`, failing at run time if a full-length row contains the padding id 0."""
  check = tf.debugging.assert_none_equal(
      tokens, 0, message=f"a full-length '{key}' row contains the padding id 0")
  with tf.control_dependencies([check]):
    return tf.identity(tokens)


def _autoregressive_inputs(targets: tf.Tensor, segment_ids: Optional[tf.Tensor],
                           bos_id: int) -> tf.Tensor:
  """`seqio.utils.make_autoregressive_inputs` over a block [rows, length]."""
  rows = tf.shape(targets)[0]
  inputs = tf.concat([tf.fill([rows, 1], tf.constant(bos_id, targets.dtype)), targets[:, :-1]],
                     axis=1)
  if segment_ids is None:
    return inputs
  # A row's first token of each packed example gets bos_id instead of the
  # previous example's last token, as in seqio.
  previous = tf.concat([tf.zeros([rows, 1], segment_ids.dtype), segment_ids[:, :-1]], axis=1)
  first = tf.not_equal(segment_ids, previous)
  return tf.where(first, tf.constant(bos_id, targets.dtype), inputs)
