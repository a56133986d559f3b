"""Tests of the TensorFlow-free TFRecord / tf.train.Example writer."""

import os
import random

import pytest

from clinical_t5.corpus import writer


def test_crc32c_known_value():
  assert writer.crc32c(b"123456789") == 0xE3069283
  assert writer.crc32c(b"") == 0


def test_crc32c_batch_matches_scalar():
  rng = random.Random(0)
  lengths = [0, 1, 3, 4, 5, 8, 63, 64, 65, 127, 128, 1000, 4097, 70000]
  messages = [bytes(rng.getrandbits(8) for _ in range(n)) for n in lengths]
  batch = writer.crc32c_batch(messages)
  for message, crc in zip(messages, batch):
    assert int(crc) == writer.crc32c(message), len(message)


def test_example_round_trip():
  features = {"text": "Pt é [Name]\r\n".encode(), "note_id": b"123", "subject_id": 10000001,
              "negative": -5, "source": b"mimic3", "category": b""}
  assert writer.decode_example(writer.encode_example(features)) == features


def test_shard_writer_round_robin(tmp_path):
  shards = writer.ShardWriter(str(tmp_path), "train", 3)
  for i in range(7):
    shards.write(writer.encode_example({"note_id": str(i).encode()}))
  shards.close()
  names = sorted(os.listdir(tmp_path))
  assert names == [f"train.tfrecord-0000{i}-of-00003" for i in range(3)]
  ids = [[writer.decode_example(r)["note_id"] for r in writer.read_records(str(tmp_path / n))]
         for n in names]
  assert ids == [[b"0", b"3", b"6"], [b"1", b"4"], [b"2", b"5"]]


def test_read_records_detects_corruption(tmp_path):
  shards = writer.ShardWriter(str(tmp_path), "train", 1)
  shards.write(b"hello world")
  shards.close()
  path = shards.paths[0]
  data = bytearray(open(path, "rb").read())
  data[14] ^= 1
  open(path, "wb").write(bytes(data))
  with pytest.raises(ValueError, match="corrupt"):
    writer.read_records(path)


@pytest.mark.slow  # importing TensorFlow takes 5-25 s on 2 busy cores
def test_tensorflow_reads_shards(tmp_path):
  tf = pytest.importorskip("tensorflow")
  shards = writer.ShardWriter(str(tmp_path), "train", 2)
  texts = [("note %d " % i).encode() * (i * 40 + 1) for i in range(20)]
  for i, text in enumerate(texts):
    shards.write(writer.encode_example({"text": text, "subject_id": i - 3}))
  shards.close()
  spec = {"text": tf.io.FixedLenFeature([], tf.string),
          "subject_id": tf.io.FixedLenFeature([], tf.int64)}
  got = {}
  for record in tf.data.TFRecordDataset(shards.paths):
    example = tf.io.parse_single_example(record, spec)
    got[int(example["subject_id"])] = example["text"].numpy()
  assert got == {i - 3: text for i, text in enumerate(texts)}


def test_encode_note_matches_encode_example():
  for text in (b"", b"x" * 200, "é".encode() * 40000):
    assert writer.encode_note(text, b"12", 10000001, b"mimic3", b"Nursing") == (
        writer.encode_example({"text": text, "note_id": b"12", "subject_id": 10000001,
                               "source": b"mimic3", "category": b"Nursing"}))
