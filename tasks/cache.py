"""Offline token cache of a task, in the layout seqio's `use_cached=True` reads.

`clinical-t5 tasks cache --out DIR` runs the preprocessors of
`mimic_span_corruption` up to its `CacheDatasetPlaceholder` (tokenization)
once, and writes the tokenized notes where seqio looks for them:

  DIR/mimic_span_corruption/
    train.tfrecord-00000-of-00008 ...   one tf.train.Example per note:
                                        {"targets": bytes}, the token ids as
                                        little-endian int32
    validation.tfrecord-00000-of-00001
    info.train.json, stats.train.json   feature specs, shard count, example and token counts
    vocabulary.json                     path and sha256 of the SentencePiece model used
    COMPLETED                           written last; seqio ignores a cache without it

Training then reads that cache (`USE_CACHED_TASKS = True`, with
`CLINICAL_T5_CACHE_DIR=DIR` or `configure(cache_dir=DIR)`), so every epoch
skips tokenization and runs only chunking and span corruption. It does the
same job as seqio's `seqio_cache_tasks` script, which needs Apache Beam.

Cache shard i contains the notes of source shard i, in order. The cache is
read with the same file interleave as the source, so for a given seed,
shard and step a cached run yields the same batches as an uncached one.

The token ids are raw bytes, not the int64 lists of seqio's own cache job,
because parsing int64 lists was the largest cost of reading the cache (about
half the CPU time, 10 of 20 microseconds per 1,400-token note on a 2-core
x86-64 machine). info.<split>.json records this as
"token_encoding": "int32_le_bytes". `mimic_span_corruption` reads both
encodings; seqio's own cached reader reads only the int64 lists.
"""

import hashlib
import json
import os
from typing import Optional, Sequence

from absl import logging
import numpy as np
import seqio
import tensorflow as tf

from clinical_t5 import fileio
from clinical_t5.errors import UserError

COMPLETED = "COMPLETED"
# Value of info["token_encoding"] for token ids stored as little-endian int32 bytes.
TOKEN_ENCODING = "int32_le_bytes"
# Fingerprint of the vocabulary the notes were tokenized with.
VOCABULARY_FILE = "vocabulary.json"


def task_cache_dir(cache_root: str, task_name: str) -> str:
  """Directory of `task_name` under a cache root, as seqio names it."""
  return os.path.join(cache_root, seqio.utils.get_task_dir_from_name(task_name))


def write_cache(task: seqio.Task, cache_root: str, splits: Sequence[str], *,
                overwrite: bool = False) -> dict[str, dict]:
  """Write the pre-cache output of `task` for `splits`; return {split: stats}.

  The directory appears complete or not at all (`fileio.atomic_output_dir`).

  Raises:
    UserError: the task has no `CacheDatasetPlaceholder`, or the output
      directory exists and `overwrite` is not set.
  """
  if not task.supports_caching:
    raise UserError(f"task {task.name} has no CacheDatasetPlaceholder, so it cannot be cached")
  out = task_cache_dir(cache_root, task.name)
  all_stats = {}
  with fileio.atomic_output_dir(out, overwrite=overwrite, marker=COMPLETED,
                                stage="tasks cache") as tmp:
    for split in splits:
      all_stats[split] = _write_split(task, split, tmp)
    with open(os.path.join(tmp, VOCABULARY_FILE), "w") as f:
      json.dump(vocabulary_fingerprint(task), f, indent=2, sort_keys=True)
    with open(os.path.join(tmp, COMPLETED), "w") as f:
      f.write("")
  return all_stats


def vocabulary_fingerprint(task: seqio.Task) -> dict:
  """Return the path and sha256 of the SentencePiece model that tokenizes `task`."""
  path = task.output_features["targets"].vocabulary.sentencepiece_model_file
  digest = hashlib.sha256()
  with tf.io.gfile.GFile(path, "rb") as f:
    digest.update(f.read())
  return {"path": path, "sha256": digest.hexdigest()}


def check_vocabulary(task: seqio.Task, cache_dir: str) -> None:
  """Raise UserError when the cache in `cache_dir` was tokenized with another vocabulary.

  A cache written before the fingerprint existed has no file to compare and passes.
  """
  path = os.path.join(cache_dir, VOCABULARY_FILE)
  if not tf.io.gfile.exists(path):
    return
  with tf.io.gfile.GFile(path) as f:
    written = json.load(f)
  current = vocabulary_fingerprint(task)
  if written.get("sha256") != current["sha256"]:
    raise UserError(f"token cache {cache_dir} was written with the vocabulary {written.get('path')} "
                    f"but {task.name} now uses {current['path']}, a different model; rebuild the "
                    "cache with `clinical-t5 tasks cache --overwrite` or set CLINICAL_T5_VOCAB "
                    "to the vocabulary the cache was written with")


def _write_split(task: seqio.Task, split: str, out_dir: str) -> dict:
  """Write one split, one cache shard per source shard; return its stats."""
  num_shards = len(task.source.list_shards(split))
  counts = {"examples": 0}
  specs = None
  for index in range(num_shards):
    shard_info = seqio.ShardInfo(index=index, num_shards=num_shards)
    notes = task.source.get_dataset(split=split, shuffle=False, shard_info=shard_info)
    notes = task.preprocess_precache(notes)
    specs = specs or notes.element_spec
    as_bytes = _is_token_notes(specs)
    path = "%s-%05d-of-%05d" % (seqio.utils.get_cached_tfrecord_prefix(out_dir, split),
                                index, num_shards)
    with tf.io.TFRecordWriter(path) as writer:
      for example in notes.as_numpy_iterator():
        record = _bytes_example(example) if as_bytes else seqio.utils.dict_to_tfexample(example)
        writer.write(record.SerializeToString())
        _count(example, task.output_features, counts)
    logging.info("tasks cache: %s %s shard %d of %d written, %d notes so far",
                 task.name, split, index + 1, num_shards, counts["examples"])

  info = {"num_shards": num_shards, "seqio_version": seqio.__version__,
          "features": {name: {"shape": [None] + spec.shape.as_list()[1:] if spec.shape.rank
                              else [], "dtype": spec.dtype.name}
                       for name, spec in specs.items()}}
  if _is_token_notes(specs):
    info["token_encoding"] = TOKEN_ENCODING
  with open(seqio.utils.get_cached_info_path(out_dir, split), "w") as f:
    json.dump(info, f, indent=2, sort_keys=True)
  with open(seqio.utils.get_cached_stats_path(out_dir, split), "w") as f:
    json.dump(counts, f, indent=2, sort_keys=True)
  return counts


def _is_token_notes(specs: dict) -> bool:
  """Return whether the cached features are exactly {"targets": int32 [length]}."""
  spec = specs.get("targets") if isinstance(specs, dict) else None
  # Notes from `tokenize_notes` are unbatched rows of a ragged batch: a
  # RaggedTensorSpec of rank 1 whose values are plain int32 vectors.
  return (set(specs) == {"targets"} and isinstance(spec, (tf.TensorSpec, tf.RaggedTensorSpec))
          and spec.dtype == tf.int32 and spec.shape.rank == 1)


def _bytes_example(example: dict) -> tf.train.Example:
  """Encode one note {"targets": int32 ids} as a tf.train.Example of int32 bytes."""
  ids = np.asarray(example["targets"], dtype="<i4").tobytes()
  return tf.train.Example(features=tf.train.Features(
      feature={"targets": tf.train.Feature(bytes_list=tf.train.BytesList(value=[ids]))}))


def _count(example: dict, output_features: dict, counts: dict) -> None:
  """Add one example to the counts that seqio's cache stats contain: examples, tokens, max tokens."""
  counts["examples"] += 1
  for name, feature in output_features.items():
    values = example.get(name)
    if not isinstance(values, np.ndarray) or values.dtype.kind != "i":
      continue
    tokens = int(np.count_nonzero((values != feature.vocabulary.eos_id)
                                  & (values != feature.vocabulary.pad_id)))
    counts[f"{name}_tokens"] = counts.get(f"{name}_tokens", 0) + tokens
    counts[f"{name}_max_tokens"] = max(counts.get(f"{name}_max_tokens", 0), tokens)


# NOTE: parsing 64 records per call instead of one cuts the per-note cost of
# reading the cache several times over (each per-note map costs tens of
# microseconds of tf.data overhead on a busy 2-core x86-64 machine).
_RECORDS_PER_PARSE = 64


def read_token_cache(cache_dir: str, split: str,
                     file_shuffle_buffer_size: Optional[int] = None
                     ) -> Optional[seqio.FileDataSource]:
  """Return a source of cached notes {"targets": int32 [note_length]}, parsed in blocks.

  It reads the files seqio's own cached source reads, in the same file and
  record order, and decodes both token encodings: int32 bytes (ours) and
  int64 lists (seqio's). Returns None when the cache contains other features
  than one variable-length integer "targets", because seqio's reader handles
  those.

  Raises:
    UserError: the cache names a token encoding this version does not know.
  """
  info_path = seqio.utils.get_cached_info_path(cache_dir, split)
  if not tf.io.gfile.exists(info_path):
    raise UserError(f"token cache {cache_dir} has no {split!r} split ({info_path} is missing); "
                    "rebuild the cache with `clinical-t5 tasks cache --overwrite`, which writes "
                    "every split unless --splits narrows it")
  with tf.io.gfile.GFile(info_path) as f:
    info = json.load(f)
  with tf.io.gfile.GFile(seqio.utils.get_cached_stats_path(cache_dir, split)) as f:
    stats = json.load(f)
  features = info["features"]
  if (set(features) != {"targets"} or features["targets"]["shape"] != [None]
      or features["targets"]["dtype"] not in ("int32", "int64")):
    return None

  encoding = info.get("token_encoding")
  if encoding not in (None, TOKEN_ENCODING):
    raise UserError(f"token cache {cache_dir} stores token ids as {encoding!r}, which this "
                    "version cannot read; rebuild it with `clinical-t5 tasks cache --overwrite`")
  parse = _parse_token_bytes if encoding == TOKEN_ENCODING else _parse_token_lists

  def read_file(files: tf.Tensor) -> tf.data.Dataset:
    records = tf.data.TFRecordDataset(files).batch(_RECORDS_PER_PARSE)
    return records.map(lambda batch: {"targets": parse(batch)}).unbatch()

  pattern = "%s-*-of-*%d" % (seqio.utils.get_cached_tfrecord_prefix(cache_dir, split),
                             info["num_shards"])
  return seqio.FileDataSource(read_file_fn=read_file, split_to_filepattern={split: pattern},
                              num_input_examples={split: stats["examples"]},
                              file_shuffle_buffer_size=file_shuffle_buffer_size)


def _parse_token_bytes(records: tf.Tensor) -> tf.RaggedTensor:
  """Decode serialized examples of int32 bytes [records] -> ids [records, (length)]."""
  encoded = tf.io.parse_example(records, {"targets": tf.io.FixedLenFeature([], tf.string)})
  encoded = encoded["targets"]                                           # [records]
  ids = tf.io.decode_raw(tf.strings.reduce_join(encoded), tf.int32)      # [tokens]
  return tf.RaggedTensor.from_row_lengths(ids, tf.cast(tf.strings.length(encoded), tf.int64) // 4)


def _parse_token_lists(records: tf.Tensor) -> tf.RaggedTensor:
  """Decode serialized examples of int64 lists (seqio's encoding) -> ids [records, (length)]."""
  ids = tf.io.parse_example(records, {"targets": tf.io.RaggedFeature(tf.int64)})["targets"]
  return tf.cast(ids, tf.int32)
