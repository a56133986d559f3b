"""Tests for `clinical-t5 vocab train|report`, including a run on the synthetic corpus."""

import hashlib
import json
import os

import pytest

from clinical_t5 import cli
from clinical_t5.vocab import load_vocabulary, testdata


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
  out = tmp_path_factory.mktemp("cli") / "corpus"
  testdata.write_shards(str(out), testdata.clinical_notes(300, seed=5), num_shards=2)
  return out


def test_train_and_report(corpus_dir, tmp_path, capsys):
  out = tmp_path / "vocab"
  code = cli.main(["vocab", "train", "--corpus", str(corpus_dir), "--out", str(out),
                   "--vocab-size", "1000", "--input-sentence-size", "2000"])
  assert code == 0
  assert "0 skipped" in capsys.readouterr().out
  assert sorted(os.listdir(out)) == ["spiece.model", "spiece.vocab", "vocab_info.json"]

  code = cli.main(["vocab", "report", "--vocab", str(out / "spiece.model"),
                   "--compare", str(out), "--corpus", str(corpus_dir)])
  assert code == 0
  result = json.loads(capsys.readouterr().out)
  assert result["tokens_a_over_b"] == 1.0
  assert result["vocab"]["unk_rate"] == 0.0

  code = cli.main(["vocab", "report", "--vocab", str(out), "--corpus", str(corpus_dir),
                   "--out", str(tmp_path / "report.json")])
  assert code == 0
  assert json.loads((tmp_path / "report.json").read_text())["corpus"]["notes"] == 300


@pytest.mark.parametrize("extra, message", [
    (["--vocab-size", "100000"], "too large for this corpus"),
    (["--vocab-size", "1000", "--user-symbol", "<extra_id_5>"], "clashes with a T5 sentinel"),
    (["--vocab-size", "50"], "too small"),
    (["--input-sentence-size", "-1"], "--input-sentence-size"),
])
def test_bad_train_input_exits_2(corpus_dir, tmp_path, capsys, extra, message):
  out = tmp_path / "vocab"
  code = cli.main(["vocab", "train", "--corpus", str(corpus_dir), "--out", str(out), *extra])
  assert code == 2
  err = capsys.readouterr().err
  assert message in err
  assert len(err.strip().splitlines()) == 1
  assert not out.exists()
  assert os.listdir(tmp_path) == []


def test_empty_corpus_exits_2(tmp_path, capsys):
  (tmp_path / "corpus").mkdir()
  code = cli.main(["vocab", "train", "--corpus", str(tmp_path / "corpus"),
                   "--out", str(tmp_path / "vocab")])
  assert code == 2
  assert "no *.tfrecord* shards" in capsys.readouterr().err
  assert not (tmp_path / "vocab").exists()


def test_missing_subcommand_exits_2(capsys):
  assert cli.main(["vocab"]) == 2
  assert cli.main(["vocab", "report", "--vocab", "x"]) == 2
  capsys.readouterr()


@pytest.mark.slow
def test_synthetic_corpus(synth_dir, tmp_path, capsys):
  corpus = tmp_path / "corpus"
  code = cli.main([
      "corpus", "build", "--mimic3", str(synth_dir / "mimic-iii/NOTEEVENTS.csv.gz"),
      "--mimic4-discharge", str(synth_dir / "mimic-iv-note/discharge.csv.gz"),
      "--mimic4-radiology", str(synth_dir / "mimic-iv-note/radiology.csv.gz"),
      "--carevue-subjects", str(synth_dir / "carevue_subject_ids.csv"),
      "--exclude-clip", str(synth_dir / "clip"), "--exclude-radqa", str(synth_dir / "radqa"),
      "--exclude-subjects", str(synth_dir / "n2c2_subject_ids.csv"), "--out", str(corpus)])
  assert code == 0
  vocab = tmp_path / "vocab"
  code = cli.main(["vocab", "train", "--corpus", str(corpus), "--out", str(vocab),
                   "--vocab-size", "1000", "--input-sentence-size", "8000"])
  assert code == 0
  capsys.readouterr()

  info = json.loads((vocab / "vocab_info.json").read_text())
  stats = json.loads((corpus / "stats.json").read_text())
  counts = info["counts"]
  assert counts["notes"] == sum(split["notes"] for split in stats["splits"].values())
  assert counts["notes_without_text"] == 0
  assert counts["trainer_skipped"] == 0
  assert counts["trainer_seen"] == counts["lines_fed"]
  # Exact duplicate lines never reach the trainer, so the synthetic set's templated
  # lines fill fewer than the 8,000 sampled; then every distinct line is fed once.
  assert 0 < counts["lines_fed"] <= 8000
  if counts["lines_fed"] < 8000:
    assert counts["lines_fed"] + counts["duplicate_lines_dropped"] == counts["lines"]
  # The synthetic set plants notes over 10 KB; some of their lines need a hard split.
  assert counts["lines_hard_split"] > 0
  manifest = hashlib.sha256((corpus / "manifest.json").read_bytes()).hexdigest()
  assert info["corpus"]["manifest_sha256"] == manifest

  code = cli.main(["vocab", "report", "--vocab", str(vocab), "--corpus", str(corpus)])
  assert code == 0
  result = json.loads(capsys.readouterr().out)
  assert result["vocab"]["unk_rate"] == 0.0
  vocabulary = load_vocabulary(str(vocab))
  for text in testdata.roundtrip_fixture():
    assert 2 not in vocabulary.encode(text)


@pytest.mark.parametrize("name", ["/proc/nope/r.json", "FILE/r.json", "DIR"])
def test_report_unwritable_out_exits_2(tmp_path, capsys, name):
  (tmp_path / "FILE").write_text("x")
  (tmp_path / "DIR").mkdir()
  out = name if name.startswith("/") else str(tmp_path / name)
  code = cli.main(["vocab", "report", "--vocab", str(tmp_path / "missing.model"),
                   "--corpus", str(tmp_path), "--out", out])
  err = capsys.readouterr().err
  assert code == 2, err
  assert out in err
  assert "missing.model" not in err
