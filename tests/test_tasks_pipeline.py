"""Tests of the pretraining fast paths: full-length packing (pipeline) and batched tokenization."""

import numpy as np
import pytest
import seqio
import tensorflow as tf

from clinical_t5_tasks import pipeline
from clinical_t5_tasks import preprocessors

from tasks_testlib import spm_path, tasks_root  # pylint: disable=unused-import

LENGTHS = {"inputs": 12, "targets": 5}


def full_length_rows(count: int, seed: int = 0) -> tf.data.Dataset:
  rng = np.random.default_rng(seed)
  inputs = rng.integers(1, 900, size=(count, 12)).astype(np.int32)   # [count, 12]
  targets = rng.integers(1, 900, size=(count, 5)).astype(np.int32)   # [count, 5]
  return tf.data.Dataset.from_tensor_slices(
      {"inputs": inputs, "targets": targets, "note_id": np.arange(count)})


def as_lists(dataset: tf.data.Dataset) -> list:
  return [{k: v.tolist() for k, v in row.items()} for row in dataset.as_numpy_iterator()]


def test_seqio_packer_is_replaced_on_request():
  pipeline.install_full_length_packing()
  assert seqio.utils.trim_and_pack_dataset is pipeline.trim_and_pack_dataset


def test_full_length_rows_match_seqio_packer():
  # 1,030 rows span three of the packer's 512-row batches.
  dataset = full_length_rows(1030)
  ours = as_lists(pipeline.trim_and_pack_dataset(dataset, LENGTHS))
  reference = as_lists(pipeline._SEQIO_TRIM_AND_PACK(dataset, LENGTHS))
  assert len(ours) == 1030
  assert ours == reference
  assert ours[0]["inputs_segment_ids"] == [1] * 12
  assert ours[0]["targets_positions"] == list(range(5))


def test_variable_length_rows_use_seqio_packer():
  dataset = tf.data.Dataset.from_generator(
      lambda: iter([{"inputs": [5, 6, 1], "targets": [7, 1]}, {"inputs": [8, 1], "targets": [1]}]),
      output_signature={"inputs": tf.TensorSpec([None], tf.int32),
                        "targets": tf.TensorSpec([None], tf.int32)})
  rows = as_lists(pipeline.trim_and_pack_dataset(dataset, LENGTHS))
  assert len(rows) == 1                                # both examples share one packed row
  assert rows[0]["inputs_segment_ids"] == [1, 1, 1, 2, 2] + [0] * 7


def test_padding_id_inside_full_row_raises():
  inputs = np.full((2, 12), 7, np.int32)
  inputs[1, 4] = 0
  dataset = tf.data.Dataset.from_tensor_slices(
      {"inputs": inputs, "targets": np.full((2, 5), 3, np.int32)})
  with pytest.raises(tf.errors.InvalidArgumentError, match="padding id 0"):
    as_lists(pipeline.trim_and_pack_dataset(dataset, LENGTHS))


def test_converter_output_matches_unpacked_rows():
  pipeline.install_full_length_packing()
  dataset = full_length_rows(20, seed=1)
  packed = as_lists(seqio.EncDecFeatureConverter(pack=True)(dataset, LENGTHS))
  plain = as_lists(seqio.EncDecFeatureConverter(pack=False)(dataset, LENGTHS))
  for packed_row, plain_row in zip(packed, plain, strict=True):
    for key, value in plain_row.items():
      assert packed_row[key] == value
    assert packed_row["encoder_segment_ids"] == [1] * 12
    assert packed_row["decoder_positions"] == list(range(5))


def test_batched_tokenization_matches_seqio_tokenize(spm_path):
  vocabulary = seqio.SentencePieceVocabulary(spm_path)
  features = {"targets": seqio.Feature(vocabulary, add_eos=True)}
  # 70 notes fill one block of 64 and part of a second; empty notes stay empty.
  texts = [f"Pt {i} stable.\nSeen by [Name] on day {i}." * (i % 4) for i in range(70)]
  notes = tf.data.Dataset.from_tensor_slices({"text": texts, "subject_id": list(range(70))})
  ours = as_lists(preprocessors.tokenize_notes(notes, features))
  reference = seqio.preprocessors.tokenize(
      seqio.preprocessors.rekey(notes, {"targets": "text"}), features, copy_pretokenized=False)
  assert ours == [{"targets": row["targets"]} for row in as_lists(reference)]
  assert ours[0]["targets"] == []
  assert len(ours[1]["targets"]) > 5


@pytest.mark.parametrize("note_boundary, expected", [
    # Inputs of 8 tokens need raw chunks of 7. Empty notes add nothing, not even an EOS.
    ("eos", [[5, 6, 1, 7, 8, 9, 10], [1, 11, 1, 12, 13, 14, 15]]),
    ("none", [[5, 6, 7, 8, 9, 10, 11], [12, 13, 14, 15, 16, 17, 18]]),
])
def test_chunking_skips_empty_notes(note_boundary, expected):
  class Vocabulary:
    eos_id = 1
  features = {"targets": seqio.Feature(Vocabulary(), add_eos=True)}
  notes = [[], [5, 6], [], [7, 8, 9, 10], [11], [], [12, 13, 14, 15, 16, 17, 18, 19]]
  dataset = tf.data.Dataset.from_generator(
      lambda: ({"targets": np.asarray(note, np.int32)} for note in notes),
      output_signature={"targets": tf.TensorSpec([None], tf.int32)})
  blocks = preprocessors.chunk_notes(dataset, {"inputs": 8, "targets": 3}, features,
                                     note_boundary=note_boundary)
  chunks = [row for block in blocks.as_numpy_iterator() for row in block["targets"].tolist()]
  assert chunks == expected


@pytest.mark.parametrize("eos_id, expected", [(1, [5, 6, 1, 7, 1]), (None, [5, 6, 7])])
def test_join_notes_eos_placement(eos_id, expected):
  notes = tf.ragged.constant([[5, 6], [], [7]], dtype=tf.int32)
  assert preprocessors.join_note_tokens(notes, eos_id).numpy().tolist() == expected
  empty = tf.ragged.constant([[], []], dtype=tf.int32, ragged_rank=1)
  assert preprocessors.join_note_tokens(empty, eos_id).numpy().tolist() == []


def test_chunking_ragged_notes_matches_dense_notes():
  class Vocabulary:
    eos_id = 1
  features = {"targets": seqio.Feature(Vocabulary(), add_eos=True)}
  rng = np.random.default_rng(4)
  # 150 notes of 0 to 40 tokens span three blocks of 64 notes.
  notes = [rng.integers(2, 900, size=int(rng.integers(0, 41))).astype(np.int32)
           for _ in range(150)]
  dense = tf.data.Dataset.from_generator(
      lambda: ({"targets": note} for note in notes),
      output_signature={"targets": tf.TensorSpec([None], tf.int32)})
  ragged = tf.data.Dataset.from_tensor_slices(
      {"targets": tf.RaggedTensor.from_row_lengths(np.concatenate(notes), list(map(len, notes)))})
  lengths = {"inputs": 8, "targets": 3}
  chunks = []
  for source in (dense, ragged):
    blocks = preprocessors.chunk_notes(source, lengths, features)
    chunks.append([row for block in blocks.as_numpy_iterator()
                   for row in block["targets"].tolist()])
  stream = np.concatenate([np.append(note, 1) for note in notes if len(note)])
  assert chunks[0] == chunks[1] == stream[:len(stream) // 7 * 7].reshape(-1, 7).tolist()


def test_short_notes_give_blocks_without_chunks():
  class Vocabulary:
    eos_id = 1
    vocab_size = 1100
    extra_ids = 100
  features = {"targets": seqio.Feature(Vocabulary(), add_eos=True)}
  # 70 notes of 10 tokens make 770 tokens with EOS, so one 568-token chunk.
  # The second block of notes then carries no chunk, and corruption must pass it.
  notes = tf.data.Dataset.from_tensor_slices({"targets": np.full((70, 10), 7, np.int32)})
  lengths = {"inputs": 512, "targets": 114}
  blocks = preprocessors.chunk_notes(notes, lengths, features)
  assert [len(block["targets"]) for block in blocks.as_numpy_iterator()] == [1, 0]
  examples = list(preprocessors.corrupt_spans(blocks, lengths, features).as_numpy_iterator())
  assert len(examples) == 1
  assert examples[0]["inputs"].shape == (512,)


def mixed_length_rows(count: int, seed: int = 0) -> tf.data.Dataset:
  """Full-length rows with shorter note-tail rows among them, plus a string feature."""
  rng = np.random.default_rng(seed)
  rows = []
  for i in range(count):
    inputs_length = 12 if i % 4 > 1 else int(rng.integers(1, 6))
    targets_length = 5 if i % 4 > 1 else int(rng.integers(1, 3))
    rows.append({"inputs": rng.integers(1, 900, size=inputs_length).astype(np.int32),
                 "targets": rng.integers(1, 900, size=targets_length).astype(np.int32),
                 "note": f"row {i}"})
  return tf.data.Dataset.from_generator(
      lambda: iter(rows),
      output_signature={"inputs": tf.TensorSpec([None], tf.int32),
                        "targets": tf.TensorSpec([None], tf.int32),
                        "note": tf.TensorSpec([], tf.string)})


@pytest.mark.parametrize("pack", [True, False])
@pytest.mark.parametrize("make_rows", [full_length_rows, mixed_length_rows])
def test_block_converter_matches_seqio(pack, make_rows):
  # 300 rows span two full converter blocks of 128 and a partial third.
  dataset = make_rows(300, seed=2)
  ours = as_lists(pipeline.BlockEncDecFeatureConverter(pack=pack)(dataset, LENGTHS))
  reference = as_lists(seqio.EncDecFeatureConverter(pack=pack)(dataset, LENGTHS))
  assert len(ours) == len(reference)
  assert ours == reference


def as_batches(dataset: tf.data.Dataset) -> list:
  return [{k: v.tolist() for k, v in sorted(batch.items())}
          for batch in dataset.as_numpy_iterator()]


@pytest.mark.parametrize("pack", [True, False])
@pytest.mark.parametrize("make_rows", [full_length_rows, mixed_length_rows])
def test_convert_batches_equals_converting_then_batching(pack, make_rows):
  # 300 rows give 9 batches of 32; the last 12 rows are dropped as seqio drops them.
  dataset = make_rows(300, seed=5)
  converter = pipeline.BlockEncDecFeatureConverter(pack=pack)
  ours = converter.convert_batches(dataset, LENGTHS, 32)
  reference = seqio.EncDecFeatureConverter(pack=pack)(dataset, LENGTHS).batch(
      32, drop_remainder=True)
  assert ours.element_spec == reference.element_spec
  assert as_batches(ours) == as_batches(reference)


@pytest.mark.parametrize("pack, bad_row", [
    (False, {"inputs": np.full(13, 7, np.int32), "targets": np.full(5, 3, np.int32)}),
    (True, {"inputs": np.array([7] * 11 + [0], np.int32), "targets": np.full(5, 3, np.int32)}),
])
def test_convert_batches_checks_dropped_rows(pack, bad_row):
  # 4 good rows fill one batch; the bad fifth row is in the partial batch that is dropped.
  rows = [{"inputs": np.full(12, 7, np.int32), "targets": np.full(5, 3, np.int32)}] * 4 + [bad_row]
  dataset = tf.data.Dataset.from_generator(
      lambda: iter(rows), output_signature={"inputs": tf.TensorSpec([None], tf.int32),
                                            "targets": tf.TensorSpec([None], tf.int32)})
  if pack:
    dataset = dataset.map(lambda row: {"inputs": tf.ensure_shape(row["inputs"], [12]),
                                       "targets": tf.ensure_shape(row["targets"], [5])})
  converter = pipeline.BlockEncDecFeatureConverter(pack=pack)
  if not pack:
    # seqio checks every row too. Its packer would cut a row with the padding
    # id instead, where ours raises (see the class docstring).
    with pytest.raises(tf.errors.InvalidArgumentError):
      as_batches(seqio.EncDecFeatureConverter(pack=pack)(dataset, LENGTHS).batch(
          4, drop_remainder=True))
  with pytest.raises(tf.errors.InvalidArgumentError):
    as_batches(converter.convert_batches(dataset, LENGTHS, 4))


def test_convert_batches_builds_each_batch_in_one_map():
  # The batched path has no unbatch step: the graph of its dataset names no UnbatchDataset.
  converter = pipeline.BlockEncDecFeatureConverter(pack=True)
  batches = converter.convert_batches(full_length_rows(64), LENGTHS, 16)
  graph = batches._as_serialized_graph().numpy()  # pylint: disable=protected-access
  assert b"UnbatchDataset" not in graph
  assert b"MapDataset" in graph


def test_block_converter_packs_note_tails():
  dataset = mixed_length_rows(30, seed=3)
  rows = as_lists(pipeline.BlockEncDecFeatureConverter(pack=True)(dataset, LENGTHS))
  assert len(rows) < 30                                # short rows share packed rows
  assert any(max(row["decoder_segment_ids"]) > 1 for row in rows)


@pytest.mark.parametrize("pack", [True, False])
@pytest.mark.parametrize("static_shapes", [True, False])
def test_block_converter_rejects_long_rows(pack, static_shapes):
  rows = [{"inputs": np.full(12, 7, np.int32), "targets": np.full(5, 3, np.int32)},
          {"inputs": np.full(13, 7, np.int32), "targets": np.full(5, 3, np.int32)}]
  if static_shapes:
    dataset = tf.data.Dataset.from_tensor_slices(
        {"inputs": np.full((2, 13), 7, np.int32), "targets": np.full((2, 5), 3, np.int32)})
  else:
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(rows), output_signature={"inputs": tf.TensorSpec([None], tf.int32),
                                              "targets": tf.TensorSpec([None], tf.int32)})
  converter = pipeline.BlockEncDecFeatureConverter(pack=pack)
  with pytest.raises(tf.errors.InvalidArgumentError, match="has length not less than or equal"):
    as_lists(converter(dataset, LENGTHS))
  with pytest.raises(tf.errors.InvalidArgumentError, match="has length not less than or equal"):
    as_batches(converter.convert_batches(dataset, LENGTHS, 2))
