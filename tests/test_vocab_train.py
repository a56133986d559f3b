"""Tests for clinical_t5.vocab.train and the seqio view of the trained vocabulary."""

import collections
import hashlib
import json
import os
import unicodedata

import pytest
import sentencepiece as spm

from clinical_t5.corpus.deid import DEID_TAGS
from clinical_t5.errors import UserError
from clinical_t5.vocab import load_vocabulary, padded_vocab_size, sampling, testdata, train

VOCAB_SIZE = 1000
SPACE = "\u2581"


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
  out = tmp_path_factory.mktemp("corpus")
  testdata.write_shards(str(out), testdata.clinical_notes(300, seed=0), num_shards=2)
  (out / "manifest.json").write_text('{"shards": 2}\n')
  return out


@pytest.fixture(scope="module")
def vocab_dir(corpus_dir, tmp_path_factory):
  out = tmp_path_factory.mktemp("vocab") / "v"
  train.train_vocabulary(str(corpus_dir), str(out), vocab_size=VOCAB_SIZE)
  return out


@pytest.fixture(scope="module")
def vocabulary(vocab_dir):
  return load_vocabulary(str(vocab_dir / "spiece.model"))


def _pieces(vocabulary, text):
  return [vocabulary.tokenizer.id_to_piece(i) for i in vocabulary.encode(text)]


def test_outputs_written(vocab_dir):
  assert sorted(os.listdir(vocab_dir)) == ["spiece.model", "spiece.vocab", "vocab_info.json"]
  lines = (vocab_dir / "spiece.vocab").read_text(encoding="utf-8").splitlines()
  assert len(lines) == VOCAB_SIZE
  assert lines[0].startswith("<pad>\t")
  assert "\\n\t0" in lines


def test_vocab_info_counts(vocab_dir, corpus_dir):
  info = json.loads((vocab_dir / "vocab_info.json").read_text())
  counts = info["counts"]
  assert counts["notes"] == 300
  assert counts["lines_fed"] == counts["trainer_seen"] == counts["trainer_used"]
  assert counts["lines_fed"] + counts["duplicate_lines_dropped"] == counts["lines"]
  assert counts["trainer_skipped"] == 0
  assert counts["max_line_bytes"] <= info["config"]["max_sentence_length"]
  assert info["pieces"]["total"] == VOCAB_SIZE
  assert info["pieces"]["byte"] == 256
  assert info["pieces"]["user_defined"] == 2 * (len(DEID_TAGS) + 1)
  expected = hashlib.sha256((corpus_dir / "manifest.json").read_bytes()).hexdigest()
  assert info["corpus"]["manifest_sha256"] == expected
  assert info["model_sha256"] == hashlib.sha256((vocab_dir / "spiece.model").read_bytes()).hexdigest()
  assert info["trainer_options"]["normalization_rule_name"] == "nfkc"
  assert info["trainer_options"]["remove_extra_whitespaces"] is False


def test_anchor_and_unused_pieces(vocab_dir, vocabulary):
  processor = spm.SentencePieceProcessor(model_file=str(vocab_dir / "spiece.model"))
  assert processor.id_to_piece(VOCAB_SIZE - 1) == train.USER_SYMBOL_ANCHOR
  assert processor.get_score(VOCAB_SIZE - 1) == 0.0
  unused = [i for i in range(VOCAB_SIZE) if processor.is_unused(i)]
  assert unused, "the notes have rule lines, so some periodic pieces must be unused"
  roots = {}
  for i in range(VOCAB_SIZE):
    piece = processor.id_to_piece(i)
    if not processor.is_unused(i) and i not in range(3, 35) and len(piece) > 0:
      root = train.primitive_root(piece)
      assert root not in roots or processor.is_byte(i), (piece, roots.get(root))
      roots[root] = piece
  emitted = {i for text in testdata.roundtrip_fixture() for i in vocabulary.encode(text)}
  assert VOCAB_SIZE - 1 not in emitted
  assert not emitted & set(unused)


def test_primitive_root():
  assert train.primitive_root("____") == "_"
  assert train.primitive_root("abab") == "ab"
  assert train.primitive_root("aba") == "aba"
  assert train.primitive_root("\u2581the") == "\u2581the"


def test_t5_special_ids(vocab_dir):
  processor = spm.SentencePieceProcessor(model_file=str(vocab_dir / "spiece.model"))
  assert processor.pad_id() == 0
  assert processor.eos_id() == 1
  assert processor.unk_id() == 2
  assert processor.bos_id() == -1
  assert processor.id_to_piece(0) == "<pad>"
  assert processor.id_to_piece(1) == "</s>"


def test_seqio_sentinels_and_padding(vocabulary):
  assert vocabulary.vocab_size == VOCAB_SIZE + 100
  assert padded_vocab_size(vocabulary) == 1152
  assert padded_vocab_size(32100) == 32128
  assert padded_vocab_size(128) == 128
  for k in range(100):
    assert list(vocabulary.encode(f"<extra_id_{k}>")) == [VOCAB_SIZE + 99 - k]


def test_round_trip_fixture(vocabulary):
  for text in testdata.roundtrip_fixture():
    # SentencePiece reserves U+2581 for the space, so a literal one decodes as a space.
    expected = unicodedata.normalize("NFKC", text).replace(SPACE, " ")
    assert vocabulary.decode(vocabulary.encode(text)) == expected, repr(text)


def test_fixture_has_no_unknown_tokens(vocabulary):
  for text in testdata.roundtrip_fixture():
    assert 2 not in vocabulary.encode(text), repr(text)


def test_byte_fallback_covers_unseen_characters(vocabulary):
  pieces = _pieces(vocabulary, "{~}")
  assert "<0x7B>" in pieces
  assert "<0x7D>" in pieces


def test_each_tag_is_one_piece_everywhere(vocabulary):
  for tag in (*DEID_TAGS, "\n"):
    for context in testdata.TAG_CONTEXTS:
      text = context.format(t=tag)
      pieces = _pieces(vocabulary, text)
      with_tag = [p for p in pieces if tag in p]
      assert len(with_tag) == text.count(tag), (text, pieces)
      assert set(with_tag) <= {tag, SPACE + tag}, (text, pieces)
      # A space right before the tag (or the start of text, where SentencePiece
      # adds one) goes into the tag's piece, never into a stray `▁`.
      after_space = text.count(" " + tag) + text.startswith(tag)
      assert with_tag.count(SPACE + tag) == after_space, (text, pieces)


def test_newline_tab_and_spaces_survive(vocabulary):
  text = "BP 120/80\nHR 88\t\tRR  16"
  assert vocabulary.decode(vocabulary.encode(text)) == text
  assert "\n" in _pieces(vocabulary, text)


def test_split_note_limits_bytes():
  line = "é" * 3000 + " word " + "x" * 5000
  parts = train.split_note("short\n\n  \n" + line, max_bytes=1000)
  assert parts[0] == "short"
  assert all(len(p.encode("utf-8")) <= 1000 for p in parts)
  assert "".join(parts[1:]).replace(" ", "") == line.replace(" ", "")


def test_split_note_cuts_at_spaces():
  parts = train.split_note("aaaa bbbb cccc", max_bytes=9)
  assert parts == ["aaaa bbbb", "cccc"]


def test_long_single_line_notes_kept(tmp_path):
  notes = testdata.clinical_notes(200, seed=1)
  long_notes = [" ".join(testdata.clinical_notes(100, seed=i, max_lines=3)).replace("\n", " ")[:10_240]
                for i in range(30)]
  assert all(len(n.encode()) > 10_000 and "\n" not in n for n in long_notes)
  testdata.write_shards(str(tmp_path / "c"), notes + long_notes, num_shards=3)
  info = train.train_vocabulary(str(tmp_path / "c"), str(tmp_path / "v"), vocab_size=VOCAB_SIZE)
  counts = info["counts"]
  assert counts["notes"] == 230
  assert counts["notes_without_text"] == 0
  assert counts["lines_hard_split"] == 30
  assert counts["trainer_seen"] == counts["lines_fed"]
  assert counts["lines_fed"] + counts["duplicate_lines_dropped"] == counts["lines"]
  assert counts["trainer_skipped"] == 0
  assert counts["max_line_bytes"] <= train.DEFAULT_MAX_SENTENCE_LENGTH


def test_skipped_line_is_detected():
  lines = [s for n in testdata.clinical_notes(150, seed=2) for s in train.split_note(n, 4192)]
  options = dict(train.trainer_options(train.VocabConfig(vocab_size=VOCAB_SIZE)),
                 max_sentence_length=128)
  lines.append("x" * 200)  # not split: SentencePiece drops it
  _, log, fed = train.run_trainer(iter(lines), options)
  counts = train.parse_trainer_log(log)
  assert counts["skipped"] >= 1
  with pytest.raises(train.VocabTrainingError):
    train.check_no_lines_lost(fed, counts)


def test_parse_log_requires_summary():
  with pytest.raises(train.VocabTrainingError):
    train.parse_trainer_log("no summary here")


def test_same_seed_same_model(corpus_dir, tmp_path):
  models = []
  for name, seed in (("a", 7), ("b", 7), ("c", 8)):
    train.train_vocabulary(str(corpus_dir), str(tmp_path / name), vocab_size=VOCAB_SIZE,
                           input_sentence_size=1500, seed=seed)
    models.append((tmp_path / name / "spiece.model").read_bytes())
  assert models[0] == models[1]
  assert models[0] != models[2]


def test_sample_is_bounded(corpus_dir, tmp_path):
  info = train.train_vocabulary(str(corpus_dir), str(tmp_path / "v"), vocab_size=VOCAB_SIZE,
                                input_sentence_size=1500)
  assert info["counts"]["lines_fed"] == 1500
  assert info["counts"]["trainer_seen"] == 1500
  assert info["counts"]["lines"] > 1500


def test_sample_unique_lines():
  counts = collections.Counter()
  assert sampling.sample_unique_lines(iter("abcab"), 5, 0, counts) == ["a", "b", "c"]
  assert counts["duplicate_lines_dropped"] == 2
  lines = [str(i) for i in range(1000)]
  sample = sampling.sample_unique_lines(iter(lines), 10, 0, collections.Counter())
  assert len(sample) == 10
  assert len(set(sample)) == 10
  assert sample == sampling.sample_unique_lines(iter(lines), 10, 0, collections.Counter())
  assert sample != sampling.sample_unique_lines(iter(lines), 10, 1, collections.Counter())


def test_sample_never_holds_a_line_twice():
  counts = collections.Counter()
  lines = [f"line {i % 7}" for i in range(5000)] + [str(i) for i in range(500)]
  sample = sampling.sample_unique_lines(iter(lines), 20, 3, counts)
  assert len(sample) == 20
  assert len(set(sample)) == 20
  assert counts["duplicate_lines_dropped"] >= 5000 - 7 - 20


def test_unique_lines_keeps_first_copies():
  counts = collections.Counter()
  assert list(sampling.unique_lines(iter(["x", "y", "x", "x"]), counts)) == ["x", "y"]
  assert counts["duplicate_lines_dropped"] == 2


@pytest.mark.parametrize("input_sentence_size", [0, 2000])
def test_periodic_note_lines_deduplicated(tmp_path, input_sentence_size):
  # A periodic note splits into identical lines, which made SentencePiece crawl.
  periodic = "ZQXMARKER word " * 8000  # 120 kB on one line: about 29 lines of 4 kB
  notes = testdata.clinical_notes(40, seed=2) + [periodic]
  testdata.write_shards(str(tmp_path / "c"), notes, num_shards=1)
  info = train.train_vocabulary(str(tmp_path / "c"), str(tmp_path / "v"), vocab_size=VOCAB_SIZE // 2,
                                input_sentence_size=input_sentence_size)
  counts = info["counts"]
  periodic_lines = train.split_note(periodic, train.DEFAULT_MAX_SENTENCE_LENGTH)
  assert len(set(periodic_lines)) <= 2
  assert counts["duplicate_lines_dropped"] >= len(periodic_lines) - 2
  assert counts["lines_fed"] + counts["duplicate_lines_dropped"] == counts["lines"]
  assert counts["trainer_seen"] == counts["lines_fed"]


def test_lowercase_folds_case(corpus_dir, tmp_path):
  train.train_vocabulary(str(corpus_dir), str(tmp_path / "v"), vocab_size=VOCAB_SIZE,
                         lowercase=True, input_sentence_size=1500)
  vocabulary = load_vocabulary(str(tmp_path / "v"))
  assert list(vocabulary.encode("PATIENT Given")) == list(vocabulary.encode("patient given"))
  # User-defined symbols are matched before normalization, so the tags keep their case.
  assert vocabulary.decode(vocabulary.encode("A\n[Name]")) == "a\n[Name]"


def test_empty_corpus_dir_rejected(tmp_path):
  (tmp_path / "c").mkdir()
  with pytest.raises(UserError, match="no \\*.tfrecord\\* shards"):
    train.train_vocabulary(str(tmp_path / "c"), str(tmp_path / "v"), vocab_size=VOCAB_SIZE)
  assert not (tmp_path / "v").exists()


def test_corpus_without_text_rejected(tmp_path):
  testdata.write_shards(str(tmp_path / "c"), ["", "  \n\t", "\n"], num_shards=1)
  with pytest.raises(UserError, match="no note with text"):
    train.train_vocabulary(str(tmp_path / "c"), str(tmp_path / "v"), vocab_size=VOCAB_SIZE)
  assert not (tmp_path / "v").exists()


def test_too_large_vocab_rejected(corpus_dir, tmp_path):
  with pytest.raises(UserError, match="too large for this corpus"):
    train.train_vocabulary(str(corpus_dir), str(tmp_path / "v"), vocab_size=100_000)
  assert not (tmp_path / "v").exists()
  assert os.listdir(tmp_path) == []


def test_too_small_vocab_rejected(corpus_dir, tmp_path):
  with pytest.raises(UserError, match="too small"):
    train.train_vocabulary(str(corpus_dir), str(tmp_path / "v"), vocab_size=200)
  assert not (tmp_path / "v").exists()


def test_sentinel_named_symbol_rejected(corpus_dir, tmp_path):
  with pytest.raises(UserError, match="clashes with a T5 sentinel"):
    train.train_vocabulary(str(corpus_dir), str(tmp_path / "v"), vocab_size=VOCAB_SIZE,
                           extra_user_symbols=["<extra_id_5>"])
  assert not (tmp_path / "v").exists()


def test_extra_user_symbol_is_one_piece(corpus_dir, tmp_path):
  train.train_vocabulary(str(corpus_dir), str(tmp_path / "v"), vocab_size=VOCAB_SIZE,
                         input_sentence_size=1500, extra_user_symbols=["[PHONE]"])
  vocabulary = load_vocabulary(str(tmp_path / "v"))
  pieces = _pieces(vocabulary, "call [PHONE] now")
  assert [p for p in pieces if "PHONE" in p] == [SPACE + "[PHONE]"]


def test_corrupt_shard_rejected(tmp_path):
  (tmp_path / "c").mkdir()
  (tmp_path / "c" / "train.tfrecord-00000-of-00001").write_bytes(b"not a tfrecord file at all")
  with pytest.raises(UserError, match="cannot read record"):
    train.train_vocabulary(str(tmp_path / "c"), str(tmp_path / "v"), vocab_size=VOCAB_SIZE)
  assert not (tmp_path / "v").exists()


def test_existing_output_needs_overwrite(corpus_dir, vocab_dir):
  with pytest.raises(UserError, match="not empty"):
    train.train_vocabulary(str(corpus_dir), str(vocab_dir), vocab_size=VOCAB_SIZE)


def test_load_vocabulary_rejects_sentinel_piece(vocab_dir, tmp_path):
  from sentencepiece import sentencepiece_model_pb2  # pylint: disable=g-import-not-at-top

  proto = sentencepiece_model_pb2.ModelProto.FromString((vocab_dir / "spiece.model").read_bytes())
  proto.pieces[3].piece = "<extra_id_5>"
  (tmp_path / "spiece.model").write_bytes(proto.SerializeToString())
  with pytest.raises(UserError, match="clashes with the T5 sentinels"):
    load_vocabulary(str(tmp_path / "spiece.model"))


def test_load_vocabulary_missing_file(tmp_path):
  with pytest.raises(UserError, match="not found"):
    load_vocabulary(str(tmp_path / "nope.model"))


def test_encode_tf_matches_python(vocabulary):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  texts = testdata.roundtrip_fixture() + ["The patient <extra_id_0> was given <extra_id_99>."]
  dataset = tf.data.Dataset.from_tensor_slices(texts).batch(16).map(vocabulary.encode_tf)
  tf_ids = [ids.tolist() for batch in dataset.as_numpy_iterator() for ids in batch]
  assert tf_ids == [list(vocabulary.encode(t)) for t in texts]


@pytest.mark.parametrize("inside", [False, True])
def test_out_containing_corpus_rejected(tmp_path, inside):
  # --overwrite replaces --out as a whole; a corpus inside it would be deleted.
  corpus = tmp_path / "corpus"
  corpus.mkdir()
  shard = corpus / "train.tfrecord-00000-of-00001"
  shard.write_bytes(b"x")
  out = corpus if inside else tmp_path
  with pytest.raises(UserError, match="contains the corpus"):
    train.train_vocabulary(str(corpus), str(out), vocab_size=1000, overwrite=True)
  assert shard.read_bytes() == b"x"


def test_overwrite_keeps_foreign_directory(corpus_dir, tmp_path):
  out = tmp_path / "home"
  out.mkdir()
  (out / "notes.txt").write_text("mine")
  with pytest.raises(UserError, match="no vocab_info.json"):
    train.train_vocabulary(str(corpus_dir), str(out), vocab_size=VOCAB_SIZE, overwrite=True)
  assert sorted(os.listdir(out)) == ["notes.txt"]


def test_unwritable_out_rejected_before_reading(tmp_path):
  (tmp_path / "corpus").mkdir()
  with pytest.raises(UserError, match="choose a writable --out"):
    train.train_vocabulary(str(tmp_path / "corpus"), "/proc/clinical-t5-vocab", vocab_size=VOCAB_SIZE)
