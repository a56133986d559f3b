"""Tests of vocabulary training, loading, reports and the Hugging Face export on URLs.

`file://` and `ram://` URLs go through tf.io.gfile, the same code path as
`gs://`. Each URL result must equal the result of the same call on local paths.
"""

import json

import pytest

from clinical_t5 import cli
from clinical_t5 import fileio
from clinical_t5.errors import UserError
from clinical_t5.vocab import hf, load_vocabulary, report, testdata, train

VOCAB_SIZE = 1000
EXTRA_IDS = 100
TEXTS = ["BP 120/80\nHR 88\tRR 16", "Seen by [Name] at [Hospital] on [Date].", "café 患者 ½ tab"]


def _url(path) -> str:
  return "file://" + str(path)


@pytest.fixture(scope="module")
def local(tmp_path_factory):
  """A local two-shard corpus with a manifest, and the vocabulary trained on it."""
  root = tmp_path_factory.mktemp("vocab_urls")
  corpus = root / "corpus"
  testdata.write_shards(str(corpus), testdata.clinical_notes(300, seed=0), num_shards=2)
  (corpus / "manifest.json").write_text('{"shards": 2}\n')
  info = train.train_vocabulary(str(corpus), str(root / "vocab"), vocab_size=VOCAB_SIZE)
  return root, info


@pytest.fixture(scope="module")
def url_vocab(local):
  """The vocabulary trained by `clinical-t5 vocab train` from a file:// corpus to a file:// out."""
  root, _ = local
  code = cli.main(["vocab", "train", "--corpus", _url(root / "corpus"),
                   "--out", _url(root / "url_vocab"), "--vocab-size", str(VOCAB_SIZE)])
  assert code == 0
  return root / "url_vocab"


def test_url_train_matches_local(local, url_vocab):
  root, _ = local
  for name in ("spiece.model", "spiece.vocab"):
    assert (url_vocab / name).read_bytes() == (root / "vocab" / name).read_bytes(), name


def test_url_train_vocab_info(local, url_vocab):
  root, local_info = local
  info = json.loads((url_vocab / "vocab_info.json").read_text())
  assert info["corpus"]["dir"] == _url(root / "corpus")
  assert info["corpus"]["manifest_sha256"] == local_info["corpus"]["manifest_sha256"]
  assert info["corpus"]["manifest_sha256"] is not None
  assert info["corpus"]["shards"] == local_info["corpus"]["shards"]
  assert info["counts"] == local_info["counts"]
  assert info["model_sha256"] == local_info["model_sha256"]


def test_train_missing_url_corpus(tmp_path):
  with pytest.raises(UserError, match="corpus directory .* not found"):
    train.train_vocabulary(_url(tmp_path / "missing"), str(tmp_path / "out"),
                           vocab_size=VOCAB_SIZE)
  assert not (tmp_path / "out").exists()


def test_load_vocabulary_from_url(local):
  root, _ = local
  expected = load_vocabulary(str(root / "vocab"))
  for path in (_url(root / "vocab"), _url(root / "vocab" / "spiece.model")):
    vocabulary = load_vocabulary(path)
    assert vocabulary.vocab_size == VOCAB_SIZE + EXTRA_IDS
    assert [vocabulary.encode(t) for t in TEXTS] == [expected.encode(t) for t in TEXTS]


def test_load_vocabulary_missing_url(tmp_path):
  with pytest.raises(UserError, match="not found"):
    load_vocabulary(_url(tmp_path / "spiece.model"))


def test_report_on_urls(local, tmp_path):
  root, _ = local
  expected = report.vocabulary_report(str(root / "vocab"), str(root / "corpus"))
  out = "ram://vocab-url-test/report/report.json"
  code = cli.main(["vocab", "report", "--vocab", _url(root / "vocab"),
                   "--corpus", _url(root / "corpus"), "--out", out])
  assert code == 0
  with fileio.open(out) as f:
    result = json.load(f)
  assert result["corpus"]["dir"] == _url(root / "corpus")
  assert result["vocab"]["path"] == _url(root / "vocab" / "spiece.model")
  for section in ("corpus", "vocab"):
    result[section].pop("dir" if section == "corpus" else "path")
    expected[section].pop("dir" if section == "corpus" else "path")
  assert result == expected


def test_hf_tokenizer_on_urls(local, tmp_path):
  root, _ = local
  hf.save_hf_tokenizer(str(root / "vocab"), str(tmp_path / "local_hf"), extra_ids=EXTRA_IDS)
  out = "ram://vocab-url-test/hf"
  hf.save_hf_tokenizer(_url(root / "vocab"), out, extra_ids=EXTRA_IDS)
  for name in ("spiece.model", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json"):
    with fileio.open(f"{out}/{name}", "rb") as f:
      assert f.read() == (tmp_path / "local_hf" / name).read_bytes(), name

  tokenizer = hf.load_hf_tokenizer(out)
  vocabulary = load_vocabulary(str(root / "vocab"), extra_ids=EXTRA_IDS)
  for text in TEXTS:
    assert tokenizer(text)["input_ids"] == vocabulary.encode(text) + [1]
