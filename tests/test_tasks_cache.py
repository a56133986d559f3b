"""Tests of the offline token cache (`clinical-t5 tasks cache`) and reading it with use_cached."""

import json
import os
import shutil

import numpy as np
import pytest
import seqio

from clinical_t5 import cli
from clinical_t5.errors import UserError
import clinical_t5_tasks
from clinical_t5_tasks import cache
from clinical_t5_tasks import mimic
from clinical_t5_tasks import settings as settings_lib

from tasks_testlib import configured, corpus_shards, spm_path, tasks_root  # pylint: disable=unused-import

LENGTHS = {"inputs": 512, "targets": 114}
TASK = mimic.TASK_NAME


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory, spm_path, corpus_shards):
  root = str(tmp_path_factory.mktemp("token_cache"))
  clinical_t5_tasks.configure(vocab_path=spm_path, corpus_dir=corpus_shards)
  cache.write_cache(seqio.get_mixture_or_task(TASK), root, mimic.SPLITS)
  clinical_t5_tasks.configure()
  return root


def batches(use_cached, *, shuffle=True, seed=3, count=4, shard_info=None, pack=True,
            num_epochs=2):
  dataset = seqio.get_dataset(TASK, LENGTHS, seqio.EncDecFeatureConverter(pack=pack),
                              dataset_split="train", shuffle=shuffle, seed=seed,
                              num_epochs=num_epochs,
                              batch_size=4, use_cached=use_cached, shard_info=shard_info)
  return list(dataset.take(count).as_numpy_iterator())


def test_cache_has_seqio_layout(cache_root, corpus_shards):
  directory = os.path.join(cache_root, TASK)
  files = sorted(os.listdir(directory))
  num_shards = len([f for f in os.listdir(corpus_shards) if f.startswith("train.tfrecord-")])
  assert "COMPLETED" in files
  assert f"train.tfrecord-00000-of-{num_shards:05d}" in files
  with open(os.path.join(directory, "info.train.json")) as f:
    info = json.load(f)
  assert info["num_shards"] == num_shards
  assert info["features"] == {"targets": {"shape": [None], "dtype": "int32"}}
  assert info["token_encoding"] == cache.TOKEN_ENCODING
  with open(os.path.join(directory, "stats.validation.json")) as f:
    stats = json.load(f)
  assert stats["examples"] > 0
  assert stats["targets_tokens"] >= stats["targets_max_tokens"] > 0


def test_cached_notes_equal_tokenized_notes(configured, cache_root):
  task = seqio.get_mixture_or_task(TASK)
  tokenized = task.preprocess_precache(task.source.get_dataset("validation", shuffle=False))
  clinical_t5_tasks.configure(vocab_path=configured.vocab_path, corpus_dir=configured.corpus_dir,
                              cache_dir=cache_root)
  task = seqio.get_mixture_or_task(TASK)
  cached = task._get_cached_source("validation").get_dataset("validation", shuffle=False)
  expected = [note["targets"].tolist() for note in tokenized.as_numpy_iterator()]
  actual = [note["targets"].tolist() for note in cached.as_numpy_iterator()]
  assert actual == expected


def _rewrite_as_int64_lists(cache_dir: str) -> None:
  """Turn a cache into seqio's own encoding: int64 lists, no token_encoding in info."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  for name in os.listdir(cache_dir):
    path = os.path.join(cache_dir, name)
    if ".tfrecord-" in name:
      records = list(tf.data.TFRecordDataset(path).as_numpy_iterator())
      with tf.io.TFRecordWriter(path) as writer:
        for record in records:
          encoded = tf.train.Example.FromString(record).features.feature["targets"]
          ids = np.frombuffer(encoded.bytes_list.value[0], dtype="<i4")
          writer.write(seqio.utils.dict_to_tfexample({"targets": ids}).SerializeToString())
    elif name.startswith("info."):
      with open(path) as f:
        info = json.load(f)
      del info["token_encoding"]
      with open(path, "w") as f:
        json.dump(info, f)


def test_seqio_encoded_cache_reads_the_same(configured, cache_root, tmp_path):
  copy = tmp_path / "cache"
  shutil.copytree(cache_root, copy)
  _rewrite_as_int64_lists(str(copy / TASK))
  read = {}
  for root in (cache_root, str(copy)):
    clinical_t5_tasks.configure(vocab_path=configured.vocab_path,
                                corpus_dir=configured.corpus_dir, cache_dir=root)
    source = seqio.get_mixture_or_task(TASK)._get_cached_source("validation")
    read[root] = [note["targets"].tolist()
                  for note in source.get_dataset("validation", shuffle=False).as_numpy_iterator()]
  assert read[str(copy)] == read[cache_root]
  assert len(read[cache_root]) > 0


def test_unknown_token_encoding_rejected(configured, cache_root, tmp_path):
  copy = tmp_path / "cache"
  shutil.copytree(cache_root, copy)
  info_path = copy / TASK / "info.train.json"
  info = json.loads(info_path.read_text())
  info["token_encoding"] = "uint16_bytes"
  info_path.write_text(json.dumps(info))
  clinical_t5_tasks.configure(vocab_path=configured.vocab_path, corpus_dir=configured.corpus_dir,
                              cache_dir=str(copy))
  with pytest.raises(UserError, match="stores token ids as 'uint16_bytes'"):
    batches(True)


def test_cached_batches_equal_uncached(configured, cache_root):
  clinical_t5_tasks.configure(vocab_path=configured.vocab_path, corpus_dir=configured.corpus_dir,
                              cache_dir=cache_root, shuffle_buffer_size=64)
  for kwargs in ({}, {"shard_info": seqio.ShardInfo(index=1, num_shards=2)},
                 {"shuffle": False, "pack": False}):
    uncached = batches(False, **kwargs)
    cached = batches(True, **kwargs)
    assert len(cached) == len(uncached) == 4
    for cached_batch, uncached_batch in zip(cached, uncached):
      assert cached_batch.keys() == uncached_batch.keys()
      for key in cached_batch:
        np.testing.assert_array_equal(cached_batch[key], uncached_batch[key], err_msg=key)


def test_cached_equals_uncached_across_epochs(configured, cache_root):
  clinical_t5_tasks.configure(vocab_path=configured.vocab_path, corpus_dir=configured.corpus_dir,
                              cache_dir=cache_root, shuffle_buffer_size=64)
  # Three whole epochs: each one reshuffles the file order, which a cache kept
  # in memory would replay from the first epoch.
  uncached = batches(False, num_epochs=3, count=-1)
  cached = batches(True, num_epochs=3, count=-1)
  assert len(cached) == len(uncached)
  for cached_batch, uncached_batch in zip(cached, uncached):
    for key in cached_batch:
      np.testing.assert_array_equal(cached_batch[key], uncached_batch[key], err_msg=key)


def test_cache_found_through_environment(configured, cache_root, monkeypatch):
  monkeypatch.setenv(settings_lib.ENV_CACHE_DIR, cache_root)
  clinical_t5_tasks.configure(vocab_path=configured.vocab_path)
  assert seqio.get_mixture_or_task(TASK).cache_dir == os.path.join(cache_root, TASK)
  assert len(batches(True, count=2)) == 2


def test_missing_cache_raises_user_error(configured, tmp_path, monkeypatch):
  monkeypatch.delenv(settings_lib.ENV_CACHE_DIR, raising=False)
  with pytest.raises(UserError, match="CLINICAL_T5_CACHE_DIR is not set"):
    batches(True)
  clinical_t5_tasks.configure(vocab_path=configured.vocab_path, cache_dir=str(tmp_path))
  with pytest.raises(UserError, match=r"mimic_span_corruption has no COMPLETED file"):
    batches(True)


def test_existing_cache_needs_overwrite(configured, cache_root):
  task = seqio.get_mixture_or_task(TASK)
  with pytest.raises(UserError, match="pass --overwrite"):
    cache.write_cache(task, cache_root, ["validation"])


def test_cache_command_writes_cache(configured, tmp_path, capsys):
  out = str(tmp_path / "cache")
  assert cli.main(["tasks", "cache", "--out", out, "--corpus-dir", configured.corpus_dir,
                   "--vocab", configured.vocab_path, "--splits", "validation"]) == 0
  output = capsys.readouterr().out
  assert output.splitlines()[1].split()[0] == "validation"
  assert os.path.exists(os.path.join(out, TASK, "COMPLETED"))
  assert not os.path.exists(os.path.join(out, TASK, "info.train.json"))


def test_cache_command_rejects_unknown_split(configured, tmp_path, capsys):
  assert cli.main(["tasks", "cache", "--out", str(tmp_path), "--splits", "test"]) == 2
  assert "invalid --splits 'test'" in capsys.readouterr().err


def test_trainer_dataset_reads_cache(configured, cache_root):
  from clinical_t5.train import config as train_config  # pylint: disable=g-import-not-at-top
  from clinical_t5.train import data  # pylint: disable=g-import-not-at-top
  clinical_t5_tasks.configure(vocab_path=configured.vocab_path, corpus_dir=configured.corpus_dir,
                              cache_dir=cache_root, shuffle_buffer_size=64)
  first = {}
  for use_cached in (False, True):
    config = train_config.DatasetConfig(
        mixture_or_task_name=TASK, task_feature_lengths=dict(LENGTHS), split="train",
        batch_size=4, seed=1, use_cached=use_cached)
    build = data.make_dataset_fn(config, shard_index=0, num_shards=1, repeat=True)
    first[use_cached] = next(build().as_numpy_iterator())
  for key in data.MODEL_FEATURES:
    np.testing.assert_array_equal(first[True][key], first[False][key], err_msg=key)


def test_cache_records_vocabulary(configured, cache_root):
  with open(os.path.join(cache_root, TASK, cache.VOCABULARY_FILE)) as f:
    written = json.load(f)
  assert written["path"] == configured.vocab_path
  assert len(written["sha256"]) == 64


def test_cache_other_vocabulary_rejected(configured, cache_root, tmp_path):
  # A copy of the cache whose fingerprint names another model.
  copy = tmp_path / "cache"
  shutil.copytree(cache_root, copy)
  with open(copy / TASK / cache.VOCABULARY_FILE, "w") as f:
    json.dump({"path": "/elsewhere/spiece.model", "sha256": "0" * 64}, f)
  clinical_t5_tasks.configure(vocab_path=configured.vocab_path, corpus_dir=configured.corpus_dir,
                              cache_dir=str(copy))
  with pytest.raises(UserError, match="written with the vocabulary /elsewhere/spiece.model"):
    batches(True)


def test_cache_command_missing_vocab(configured, tmp_path, capsys):
  out = tmp_path / "cache"
  assert cli.main(["tasks", "cache", "--out", str(out), "--corpus-dir", configured.corpus_dir,
                   "--vocab", str(tmp_path / "missing.model")]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1
  assert "missing.model not found" in err[0]
  assert not out.exists()


@pytest.mark.parametrize("use_cached", [False, True])
def test_task_examples_equal_seqio_get_dataset(configured, cache_root, use_cached):
  # SpanCorruptionTask.get_dataset restates seqio's steps without the example
  # prefetch and the in-memory cache; the examples must not change.
  clinical_t5_tasks.configure(vocab_path=configured.vocab_path, corpus_dir=configured.corpus_dir,
                              cache_dir=cache_root, shuffle_buffer_size=50)
  task = seqio.get_mixture_or_task(TASK)
  for shard_info in (None, seqio.ShardInfo(index=1, num_shards=2),
                     seqio.ShardInfo(index=3, num_shards=8)):     # 8 > 4 files: by example
    arguments = dict(sequence_length=LENGTHS, split="train", use_cached=use_cached,
                     shuffle=True, seed=5, shard_info=shard_info, num_epochs=2)
    ours = task.get_dataset(**arguments)
    reference = seqio.Task.get_dataset(task, **arguments, try_in_mem_cache=False)
    ours_rows = [row["inputs"].tolist() for row in ours.take(60).as_numpy_iterator()]
    reference_rows = [row["inputs"].tolist() for row in reference.take(60).as_numpy_iterator()]
    assert len(ours_rows) == 60
    assert ours_rows == reference_rows


def test_trainer_checks_each_cached_split(configured, cache_root, tmp_path):
  from clinical_t5.train import validation  # pylint: disable=g-import-not-at-top
  copy = tmp_path / "cache"
  shutil.copytree(cache_root, copy)
  for name in os.listdir(copy / TASK):
    if name.startswith("validation.") or name.endswith(".validation.json"):
      os.remove(copy / TASK / name)
  clinical_t5_tasks.configure(vocab_path=configured.vocab_path, corpus_dir=configured.corpus_dir,
                              cache_dir=str(copy))
  validation.check_cached(TASK, "train")
  with pytest.raises(UserError, match="has no 'validation' split"):
    validation.check_cached(TASK, "validation")
  info_path = copy / TASK / "info.train.json"
  info = json.loads(info_path.read_text())
  info["token_encoding"] = "int16_le_bytes"
  info_path.write_text(json.dumps(info))
  with pytest.raises(UserError, match="stores token ids as 'int16_le_bytes'"):
    validation.check_cached(TASK, "train")
