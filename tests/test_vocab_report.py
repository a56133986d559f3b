"""Tests for clinical_t5.vocab.report."""

import json

import pytest
import sentencepiece as spm

from clinical_t5.errors import UserError
from clinical_t5.vocab import report, testdata, train


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  root = tmp_path_factory.mktemp("report")
  notes = testdata.clinical_notes(250, seed=4)
  # Notes long enough to pass 512 tokens.
  notes += ["\n".join(testdata.clinical_notes(12, seed=100 + i)) for i in range(10)]
  testdata.write_shards(str(root / "corpus"), notes, num_shards=2)
  for name, size in (("a", 1000), ("b", 600)):
    train.train_vocabulary(str(root / "corpus"), str(root / name), vocab_size=size,
                           input_sentence_size=2000)
  return root, notes


def _direct_counts(model, notes):
  processor = spm.SentencePieceProcessor(model_file=str(model))
  encoded = processor.encode(notes)
  return encoded, processor


def test_metrics_match_direct_encoding(setup):
  root, notes = setup
  result = report.vocabulary_report(str(root / "a" / "spiece.model"), str(root / "corpus"))
  encoded, processor = _direct_counts(root / "a" / "spiece.model", notes)
  tokens = sum(len(ids) for ids in encoded)
  words = sum(len(n.split()) for n in notes)
  long_notes = sum(len(ids) > 512 for ids in encoded)
  byte_tokens = sum(processor.is_byte(i) for ids in encoded for i in ids)
  metrics = result["vocab"]
  assert result["corpus"]["notes"] == len(notes)
  assert metrics["tokens"] == tokens
  assert metrics["tokens_per_word"] == pytest.approx(tokens / words)
  assert metrics["byte_fallback_rate"] == pytest.approx(byte_tokens / tokens)
  assert metrics["share_notes_over_512_tokens"] == pytest.approx(long_notes / len(notes))
  assert long_notes >= 10
  assert metrics["unk_rate"] == 0.0


def test_compare_ratio(setup):
  root, _ = setup
  result = report.vocabulary_report(str(root / "a"), str(root / "corpus"),
                                    compare_path=str(root / "b" / "spiece.model"))
  a, b = result["vocab"]["tokens"], result["compare"]["tokens"]
  assert result["tokens_a_over_b"] == pytest.approx(a / b)
  assert result["tokens_b_over_a"] == pytest.approx(b / a)
  # The larger vocabulary needs fewer tokens.
  assert a < b


def test_max_notes_limits_reading(setup):
  root, _ = setup
  result = report.vocabulary_report(str(root / "a"), str(root / "corpus"), max_notes=7)
  assert result["corpus"]["notes"] == 7


def test_write_report_to_file(setup, tmp_path):
  root, _ = setup
  result = report.vocabulary_report(str(root / "a"), str(root / "corpus"), max_notes=5)
  report.write_report(result, str(tmp_path / "r.json"))
  assert json.loads((tmp_path / "r.json").read_text()) == result


def test_bad_inputs_rejected(setup, tmp_path):
  root, _ = setup
  with pytest.raises(UserError, match="not found"):
    report.vocabulary_report(str(tmp_path / "missing.model"), str(root / "corpus"))
  (tmp_path / "junk.model").write_bytes(b"junk")
  with pytest.raises(UserError, match="not a SentencePiece model"):
    report.vocabulary_report(str(tmp_path / "junk.model"), str(root / "corpus"))
  with pytest.raises(UserError, match="no \\*.tfrecord\\* shards"):
    report.vocabulary_report(str(root / "a"), str(tmp_path))
  with pytest.raises(UserError, match="--max-notes"):
    report.vocabulary_report(str(root / "a"), str(root / "corpus"), max_notes=-1)
