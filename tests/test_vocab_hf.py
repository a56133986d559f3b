"""Tests for clinical_t5.vocab.hf: Hugging Face tokenizers give the same ids as seqio."""

import json
import os

import pytest

from clinical_t5.errors import UserError
from clinical_t5.vocab import hf, load_vocabulary, testdata, train

VOCAB_SIZE = 1000
EXTRA_IDS = 100


@pytest.fixture(scope="module")
def vocab_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("hf")
  testdata.write_shards(str(root / "corpus"), testdata.clinical_notes(300, seed=3), num_shards=1)
  train.train_vocabulary(str(root / "corpus"), str(root / "vocab"), vocab_size=VOCAB_SIZE)
  return root / "vocab"


@pytest.fixture(scope="module")
def hf_dir(vocab_dir, tmp_path_factory):
  out = tmp_path_factory.mktemp("hf_out") / "tokenizer"
  hf.save_hf_tokenizer(str(vocab_dir / "spiece.model"), str(out), extra_ids=EXTRA_IDS)
  return out


@pytest.fixture(scope="module")
def seqio_vocab(vocab_dir):
  return load_vocabulary(str(vocab_dir), extra_ids=EXTRA_IDS)


@pytest.fixture(scope="module")
def hf_tokenizers(hf_dir):
  import transformers  # pylint: disable=g-import-not-at-top

  return {
      "AutoTokenizer": transformers.AutoTokenizer.from_pretrained(str(hf_dir)),
      "T5Tokenizer": hf.load_hf_tokenizer(str(hf_dir)),
  }


def _texts():
  return testdata.roundtrip_fixture() + testdata.clinical_notes(60, seed=11)


def test_files_written(hf_dir, vocab_dir):
  assert sorted(os.listdir(hf_dir)) == ["special_tokens_map.json", "spiece.model",
                                        "tokenizer.json", "tokenizer_config.json"]
  assert (hf_dir / "spiece.model").read_bytes() == (vocab_dir / "spiece.model").read_bytes()
  config = json.loads((hf_dir / "tokenizer_config.json").read_text())
  assert config["tokenizer_class"] == "TokenizersBackend"
  assert len(config["additional_special_tokens"]) == EXTRA_IDS


def test_fast_and_slow_are_one_class():
  import transformers  # pylint: disable=g-import-not-at-top

  # transformers 5 has no SentencePiece-backed T5 class; both names are the tokenizers one.
  assert transformers.T5TokenizerFast is transformers.T5Tokenizer


def test_loaded_classes(hf_tokenizers):
  assert type(hf_tokenizers["T5Tokenizer"]).__name__ == "T5Tokenizer"
  assert type(hf_tokenizers["AutoTokenizer"]).__name__ == "TokenizersBackend"


@pytest.mark.parametrize("name", ["AutoTokenizer", "T5Tokenizer"])
def test_ids_match_seqio(name, hf_tokenizers, seqio_vocab):
  tokenizer = hf_tokenizers[name]
  for text in _texts():
    expected = list(seqio_vocab.encode(text)) + [1]
    assert tokenizer(text)["input_ids"] == expected, repr(text[:80])


@pytest.mark.parametrize("name", ["AutoTokenizer", "T5Tokenizer"])
def test_batch_ids_match_seqio(name, hf_tokenizers, seqio_vocab):
  texts = _texts()
  batch = hf_tokenizers[name](texts, add_special_tokens=False)["input_ids"]
  assert batch == [list(seqio_vocab.encode(t)) for t in texts]


@pytest.mark.parametrize("name", ["AutoTokenizer", "T5Tokenizer"])
def test_decode_matches_seqio(name, hf_tokenizers, seqio_vocab):
  tokenizer = hf_tokenizers[name]
  for text in _texts():
    ids = list(seqio_vocab.encode(text))
    assert tokenizer.decode(ids) == seqio_vocab.decode(ids), repr(text[:80])


@pytest.mark.parametrize("name", ["AutoTokenizer", "T5Tokenizer"])
def test_sentinel_ids_match_seqio(name, hf_tokenizers, seqio_vocab):
  tokenizer = hf_tokenizers[name]
  assert len(tokenizer) == seqio_vocab.vocab_size == VOCAB_SIZE + EXTRA_IDS
  for k in range(EXTRA_IDS):
    sentinel = f"<extra_id_{k}>"
    expected = seqio_vocab.vocab_size - 1 - k
    assert tokenizer.convert_tokens_to_ids(sentinel) == expected
    assert list(seqio_vocab.encode(sentinel)) == [expected]
    assert tokenizer(sentinel, add_special_tokens=False)["input_ids"] == [expected]
    # seqio matches a sentinel at the start or after a space.
    text = f"Pt given {sentinel} at [Name] {sentinel}."
    assert tokenizer(text, add_special_tokens=False)["input_ids"] == list(seqio_vocab.encode(text))
    ids = list(seqio_vocab.encode(f"x {sentinel} y"))
    assert tokenizer.decode(ids) == seqio_vocab.decode(ids)


def test_special_token_ids(hf_tokenizers):
  tokenizer = hf_tokenizers["AutoTokenizer"]
  assert tokenizer.pad_token_id == 0
  assert tokenizer.eos_token_id == 1
  assert tokenizer.unk_token_id == 2
  assert tokenizer.bos_token_id is None


def test_skip_special_tokens_drops_sentinels(hf_tokenizers, seqio_vocab):
  tokenizer = hf_tokenizers["AutoTokenizer"]
  ids = list(seqio_vocab.encode("BP 120/80 <extra_id_0> HR 88")) + [1]
  assert "<extra_id_0>" not in tokenizer.decode(ids, skip_special_tokens=True)


def test_save_pretrained_round_trip(hf_tokenizers, seqio_vocab, tmp_path):
  import transformers  # pylint: disable=g-import-not-at-top

  hf_tokenizers["AutoTokenizer"].save_pretrained(str(tmp_path / "again"))
  reloaded = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "again"))
  for text in testdata.roundtrip_fixture():
    assert reloaded(text)["input_ids"] == list(seqio_vocab.encode(text)) + [1], repr(text)


def test_sentinel_named_piece_rejected(vocab_dir, tmp_path):
  from sentencepiece import sentencepiece_model_pb2  # pylint: disable=g-import-not-at-top

  proto = sentencepiece_model_pb2.ModelProto.FromString((vocab_dir / "spiece.model").read_bytes())
  proto.pieces[4].piece = "\u2581<extra_id_0>"
  (tmp_path / "spiece.model").write_bytes(proto.SerializeToString())
  with pytest.raises(UserError, match="clashes with the T5 sentinels"):
    hf.save_hf_tokenizer(str(tmp_path / "spiece.model"), str(tmp_path / "out"))
  assert not (tmp_path / "out").exists()


def test_folding_model_rejected(vocab_dir, tmp_path):
  from sentencepiece import sentencepiece_model_pb2  # pylint: disable=g-import-not-at-top

  proto = sentencepiece_model_pb2.ModelProto.FromString((vocab_dir / "spiece.model").read_bytes())
  proto.normalizer_spec.remove_extra_whitespaces = True
  (tmp_path / "spiece.model").write_bytes(proto.SerializeToString())
  with pytest.raises(UserError, match="remove_extra_whitespaces"):
    hf.save_hf_tokenizer(str(tmp_path / "spiece.model"), str(tmp_path / "out"))
