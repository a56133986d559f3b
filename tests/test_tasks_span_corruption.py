"""Tests of clinical_t5_tasks.span_corruption (T5 span corruption in TF and numpy)."""

import numpy as np
import pytest
import tensorflow as tf

from clinical_t5.errors import UserError
from clinical_t5_tasks import span_corruption as sc

from tasks_testlib import spm_path, tasks_root  # pylint: disable=unused-import

VOCAB_SIZE = 5000
EOS = 1
# Ids at or above VOCAB_SIZE - SENTINEL_RANGE count as sentinels here: 2,048
# raw tokens need 114 spans, more than the 100 extra ids a real vocabulary has.
SENTINEL_RANGE = 200


def reconstruct(inputs, targets, vocab_size=VOCAB_SIZE, sentinel_range=SENTINEL_RANGE):
  """Rebuild the raw chunk: each sentinel in the inputs takes its span from the targets."""
  first_sentinel = vocab_size - sentinel_range
  assert inputs[-1] == EOS
  assert targets[-1] == EOS
  spans, current = {}, None
  for token in targets[:-1]:
    if token >= first_sentinel:
      current = int(token)
      spans[current] = []
    else:
      spans[current].append(int(token))
  raw = []
  for token in inputs[:-1]:
    raw.extend(spans[int(token)] if token >= first_sentinel else [int(token)])
  return raw


def sentinels_of(sequence, vocab_size=VOCAB_SIZE, sentinel_range=SENTINEL_RANGE):
  return [int(t) for t in sequence if t >= vocab_size - sentinel_range]


def test_lengths_match_t5_table():
  table = {128: (141, 29), 256: (284, 58), 512: (568, 114), 1024: (1137, 229), 2048: (2274, 456)}
  for inputs_length, (raw, targets) in table.items():
    lengths = sc.raw_length_for(inputs_length)
    assert (lengths.raw, lengths.inputs, lengths.targets) == (raw, inputs_length, targets)


def test_validation_rejects_too_many_spans():
  with pytest.raises(UserError, match=r"inputs length 2048.*114 noise spans.*100 extra ids"):
    sc.validate_lengths(2048, 456)


def test_validation_rejects_short_targets():
  with pytest.raises(UserError, match=r"targets length 100 .*inputs length 512.*114"):
    sc.validate_lengths(512, 100)


def test_validation_accepts_t5_lengths():
  assert sc.validate_lengths(512, 114).raw == 568
  assert sc.validate_lengths(1024, 229).raw == 1137


def test_hand_built_spans_give_docstring_example():
  tokens = tf.constant([[11, 12, 13, 14, 15, 16, 17, 18, 19, 20]])
  starts, ends = tf.constant([[2, 7]]), tf.constant([[4, 8]])
  inputs, targets = sc.apply_noise_spans_tf(tokens, starts, ends, 1100, EOS)
  assert inputs.numpy().tolist() == [[11, 12, 1099, 15, 16, 17, 1098, 19, 20, EOS]]
  assert targets.numpy().tolist() == [[1099, 13, 14, 1098, 18, EOS]]


def test_numpy_twin_matches_tf_on_same_spans():
  rng = np.random.default_rng(3)
  tokens = rng.integers(3, 900, size=(16, 568)).astype(np.int32)
  starts, ends = sc.noise_spans_tf(16, 568, 85, 28, tf.constant([5, 6]))
  tf_inputs, tf_targets = sc.apply_noise_spans_tf(tf.constant(tokens), starts, ends,
                                                  VOCAB_SIZE, EOS)
  np_inputs, np_targets = sc.apply_noise_spans_numpy(tokens, starts.numpy(), ends.numpy(),
                                                     VOCAB_SIZE, EOS)
  np.testing.assert_array_equal(tf_inputs.numpy(), np_inputs)
  np.testing.assert_array_equal(tf_targets.numpy(), np_targets)


def test_fixed_seed_gives_exact_output():
  tokens = tf.range(10, 50)[tf.newaxis, :]                         # [1, 40]
  inputs, targets = sc.corrupt_batch_tf(tokens, tf.constant([0, 1]), vocab_size=1100,
                                        eos_id=EOS)
  # 40 raw tokens: 6 noise tokens in 2 spans (lengths 4 and 2). Recorded from
  # this implementation; the stateless draw must never change for a seed.
  assert inputs.numpy().tolist() == [list(range(10, 31)) + [1099] + list(range(35, 46))
                                     + [1098, 48, 49, EOS]]
  assert targets.numpy().tolist() == [[1099, 31, 32, 33, 34, 1098, 46, 47, EOS]]
  again = sc.corrupt_batch_tf(tokens, tf.constant([0, 1]), vocab_size=1100, eos_id=EOS)
  assert again[0].numpy().tolist() == inputs.numpy().tolist()


def test_fixed_seed_gives_exact_spans_at_568_tokens():
  # Both samplers run here: top_k for the 27 cuts among 84 noise positions,
  # first-distinct for the 28 gaps among 484. Recorded from this implementation.
  starts, ends = sc.noise_spans_tf(2, 568, 85, 28, tf.constant([0, 1]))
  assert starts.numpy()[0].tolist() == [
      5, 11, 43, 55, 72, 79, 100, 110, 126, 142, 179, 187, 217, 259, 262, 270, 275, 314, 364,
      373, 393, 420, 471, 503, 505, 510, 533, 540]
  assert ends.numpy()[0].tolist() == [
      9, 14, 54, 56, 76, 81, 103, 111, 129, 145, 184, 188, 224, 260, 263, 271, 276, 316, 365,
      382, 395, 421, 472, 504, 509, 515, 536, 544]


def _subset_counts(picks: np.ndarray) -> dict:
  counts = {}
  for row in map(tuple, picks.tolist()):
    counts[row] = counts.get(row, 0) + 1
  return counts


def test_both_samplers_draw_every_subset_equally_often():
  # 3 of 6 values: 20 subsets, 3,000 expected draws each of 60,000.
  top_k = sc._sorted_sample_tf(tf.constant([2, 3]), 60_000, 0, tf.constant(6), 3)
  # 5 draws give fewer than 3 distinct values in about 12% of rows, so the
  # redraw loop runs several times here.
  first_distinct = sc._sample_first_distinct_tf(tf.constant([2, 3]), 60_000, 6, 3, 5)
  for picks in (top_k.numpy(), first_distinct.numpy()):
    counts = _subset_counts(picks)
    assert len(counts) == 20
    assert all(len(set(subset)) == 3 and max(subset) < 6 for subset in counts)
    # One standard deviation is about 53 draws; 6 of them is 320.
    assert max(abs(n - 3000) for n in counts.values()) < 320


def test_first_distinct_draw_count_keeps_redraws_rare():
  assert sc._draws_for(484, 28) == 34           # the gaps at 568 raw tokens
  assert sc._draws_for(84, 27) is None          # the cuts: top_k is cheaper
  assert sc._draws_for(35, 1) is None


@pytest.mark.parametrize("t5_mask_layout", [False, True])
def test_batch_without_rows_keeps_output_lengths(t5_mask_layout):
  # chunk_notes emits blocks of no chunks, e.g. for a block of empty notes.
  for length in (1, 40, 568, 1137):
    inputs, targets = sc.corrupt_batch_tf(tf.zeros([0, length], tf.int32), tf.constant([1, 2]),
                                          vocab_size=VOCAB_SIZE, eos_id=EOS,
                                          t5_mask_layout=t5_mask_layout)
    expected = sc.span_lengths(length)
    assert inputs.shape == (0, expected.inputs)
    assert targets.shape == (0, expected.targets)


def test_different_seeds_give_different_masks():
  tokens = tf.tile(tf.range(10, 578)[tf.newaxis, :], [2, 1])
  first = sc.corrupt_batch_tf(tokens, tf.constant([0, 1]), vocab_size=VOCAB_SIZE, eos_id=EOS)[0]
  second = sc.corrupt_batch_tf(tokens, tf.constant([0, 2]), vocab_size=VOCAB_SIZE, eos_id=EOS)[0]
  assert first.numpy()[0].tolist() != second.numpy()[0].tolist()
  assert first.numpy()[0].tolist() != first.numpy()[1].tolist()   # rows differ too


@pytest.mark.parametrize("t5_mask_layout", [False, True])
def test_properties_over_lengths_and_seeds(t5_mask_layout):
  lengths = [8, 9, 10, 13, 31, 64, 100, 141, 284, 500, 568, 1000, 1137, 1500, 2048]
  for length in lengths:
    raw = np.arange(10, 10 + length, dtype=np.int32)
    expected = sc.span_lengths(length)
    # Each of the 16 rows draws its own spans, so one call checks 16 masks.
    tokens = tf.constant(np.tile(raw, (16, 1)))                      # [16, length]
    inputs, targets = sc.corrupt_batch_tf(tokens, tf.constant([length, 7]),
                                          vocab_size=VOCAB_SIZE, eos_id=EOS,
                                          t5_mask_layout=t5_mask_layout)
    assert inputs.shape == (16, expected.inputs)
    assert targets.shape == (16, expected.targets)
    span_ids = list(range(VOCAB_SIZE - 1, VOCAB_SIZE - 1 - expected.spans, -1))
    for row_inputs, row_targets in zip(inputs.numpy(), targets.numpy()):
      assert reconstruct(row_inputs, row_targets) == raw.tolist()
      assert sentinels_of(row_inputs) == span_ids
      assert sentinels_of(row_targets) == span_ids
      assert len(row_targets) - 1 - expected.spans == expected.noise
    # T5's layout has one mask only for chunks with a single span (<= 30 tokens).
    if length > (30 if t5_mask_layout else 12):
      assert len({tuple(row) for row in inputs.numpy()}) > 1


def test_noise_fraction_near_density():
  for length in (100, 568, 2048):
    expected = sc.span_lengths(length)
    assert abs(expected.noise / length - 0.15) <= 0.5 / length
  tokens = tf.tile(tf.range(10, 578)[tf.newaxis, :], [64, 1])
  _, targets = sc.corrupt_batch_tf(tokens, tf.constant([4, 4]), vocab_size=VOCAB_SIZE, eos_id=EOS)
  noise = np.sum(targets.numpy() < VOCAB_SIZE - SENTINEL_RANGE, axis=1) - 1     # minus EOS
  assert np.all(noise == 85)                                      # 85 / 568 = 0.1496


def test_default_layout_does_not_always_mask_chunk_end():
  starts, ends = sc.noise_spans_tf(512, 568, 85, 28, tf.constant([9, 9]))
  mask = sc.noise_mask_tf(starts, ends, 568).numpy()              # [512, 568]
  assert 0.05 < mask[:, -1].mean() < 0.3
  assert 0.05 < mask[:, 0].mean() < 0.3
  assert abs(mask.mean() - 85 / 568) < 1e-9
  # The mean span length is 85 / 28 = 3.04 tokens in every row.
  assert np.all((ends - starts).numpy().sum(axis=1) == 85)


def test_t5_layout_always_masks_chunk_end():
  starts, ends = sc.noise_spans_tf(256, 568, 85, 28, tf.constant([9, 9]), t5_mask_layout=True)
  mask = sc.noise_mask_tf(starts, ends, 568).numpy()
  assert mask[:, -1].all()
  assert not mask[:, 0].any()


def test_span_positions_cover_chunk_evenly():
  starts, ends = sc.noise_spans_tf(1024, 568, 85, 28, tf.constant([1, 5]))
  mask = sc.noise_mask_tf(starts, ends, 568).numpy()
  per_position = mask.mean(axis=0)                                # [568]
  # Every tenth of the chunk is noised at about the same rate, 0.15.
  for part in np.array_split(per_position, 10):
    assert abs(part.mean() - 0.15) < 0.03


@pytest.mark.parametrize("density", [0.15, 0.5, 0.55])
@pytest.mark.parametrize("mean_span", [1.0, 3.0, 8.0, 64.0])
def test_density_and_span_grid_keeps_shapes(density, mean_span):
  for length in (8, 31, 568):
    expected = sc.span_lengths(length, density, mean_span)
    tokens = tf.tile(tf.range(10, 10 + length)[tf.newaxis, :], [4, 1])
    # Up to 284 spans here, so sentinels get a range of 1,000 ids.
    inputs, targets = sc.corrupt_batch_tf(tokens, tf.constant([1, 2]), vocab_size=100_000,
                                          eos_id=EOS, noise_density=density,
                                          mean_noise_span_length=mean_span)
    assert inputs.shape == (4, expected.inputs)
    assert targets.shape == (4, expected.targets)
    rebuilt = reconstruct(inputs.numpy()[0], targets.numpy()[0], 100_000, 1000)
    assert rebuilt == list(range(10, 10 + length))


def test_single_chunk_handles_short_lengths():
  corrupt = tf.function(
      lambda tokens, seed: sc.corrupt_one_tf(tokens, seed, vocab_size=VOCAB_SIZE, eos_id=EOS),
      input_signature=[tf.TensorSpec([None], tf.int32), tf.TensorSpec([2], tf.int32)])
  for length in range(0, 40):
    raw = list(range(10, 10 + length))
    inputs, targets = corrupt(tf.constant(raw, tf.int32, shape=[length]),
                              tf.constant([2, length]))
    expected = sc.span_lengths(length)
    assert len(inputs) == expected.inputs
    assert len(targets) == expected.targets
    assert reconstruct(inputs.numpy(), targets.numpy()) == raw
  # One token cannot be split into noise and non-noise: it passes through unmasked.
  assert sc.span_lengths(1).spans == 0


def test_numpy_reference_properties():
  rng = np.random.default_rng(0)
  for length in (8, 31, 568, 1137):
    raw = np.arange(10, 10 + length, dtype=np.int32)
    inputs, targets = sc.corrupt_numpy(np.tile(raw, (4, 1)), rng, vocab_size=VOCAB_SIZE,
                                       eos_id=EOS)
    expected = sc.span_lengths(length)
    assert inputs.shape == (4, expected.inputs)
    assert targets.shape == (4, expected.targets)
    assert reconstruct(inputs[0], targets[0]) == raw.tolist()


def test_sentinels_decode_with_user_symbols(spm_path):
  from clinical_t5_tasks import settings  # pylint: disable=g-import-not-at-top
  vocabulary = settings.make_vocabulary(settings.TaskSettings(vocab_path=spm_path))
  processor = vocabulary.tokenizer
  user_symbols = {processor.piece_to_id(tag) for tag in ("[Name]", "[MISC]", "\n")}
  assert len(user_symbols) == 3
  assert processor.unk_id() not in user_symbols
  tokens = tf.constant([vocabulary.encode("Seen by [Name] on [DAY].\nPlan: discharge home " * 20)])
  inputs, _ = sc.corrupt_batch_tf(tokens, tf.constant([0, 3]), vocab_size=vocabulary.vocab_size,
                                  eos_id=vocabulary.eos_id)
  sentinel_ids = sentinels_of(inputs.numpy()[0], vocabulary.vocab_size, 100)
  assert sentinel_ids
  for k, sentinel in enumerate(sentinel_ids):
    assert vocabulary.decode([sentinel]) == f"<extra_id_{k}>"
    assert processor.id_to_piece(sentinel) == f"▁<extra_id_{k}>"
    assert sentinel not in user_symbols
