"""Tests of the whole corpus build: the synthetic data set, own notes, splits, output files."""

import hashlib
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import corpus_testlib as lib
from clinical_t5 import cli
from clinical_t5.corpus import build
from clinical_t5.errors import UserError


def full_build_args(synth, out):
  return ["corpus", "build",
          "--mimic3", f"{synth}/mimic-iii/NOTEEVENTS.csv.gz",
          "--mimic4-discharge", f"{synth}/mimic-iv-note/discharge.csv.gz",
          "--mimic4-radiology", f"{synth}/mimic-iv-note/radiology.csv.gz",
          "--carevue-subjects", f"{synth}/carevue_subject_ids.csv",
          "--exclude-clip", f"{synth}/clip", "--exclude-radqa", f"{synth}/radqa",
          "--exclude-subjects", f"{synth}/n2c2_subject_ids.csv", "--out", str(out)]


@pytest.fixture(scope="module")
def full_build(synth_dir, tmp_path_factory):
  out = tmp_path_factory.mktemp("corpus") / "full"
  assert cli.main(full_build_args(synth_dir, out)) == 0
  with open(out / "stats.json") as f:
    return out, json.load(f)


def test_full_build_matches_synth_report(synth_dir, full_build):
  _, stats = full_build
  with open(synth_dir / "synth_report.json") as f:
    expected = json.load(f)["expected_corpus"]
  assert set(expected) == {"input_rows", "dropped", "removed_subjects", "tags", "placeholders",
                           "output_notes"}
  for key in ("input_rows", "dropped", "removed_subjects", "tags", "placeholders"):
    assert stats[key] == expected[key], key
  assert {s: o["notes"] for s, o in stats["output"].items()} == expected["output_notes"]


def test_full_build_records_and_split(full_build):
  out, stats = full_build
  records = lib.read_corpus(out)
  assert len(records["train"]) == stats["splits"]["train"]["notes"]
  assert len(records["validation"]) == stats["splits"]["validation"]["notes"] > 0
  train_subjects = {r["subject_id"] for r in records["train"]}
  validation_subjects = {r["subject_id"] for r in records["validation"]}
  assert not train_subjects & validation_subjects
  notes = records["train"] + records["validation"]
  assert sum(r["source"] == b"mimic3" for r in notes) == stats["output"]["mimic3"]["notes"]
  assert all("[**" not in r["text"].decode() for r in notes if r["source"] != b"mimic3"
             ) and all("___ " not in r["text"].decode() for r in notes
                       if r["source"].startswith(b"mimic4"))
  assert stats["output"]["mimic3"]["chars"] == sum(
      len(r["text"].decode()) for r in notes if r["source"] == b"mimic3")


def test_full_build_manifest(synth_dir, full_build):
  out, _ = full_build
  with open(out / "manifest.json") as f:
    manifest = json.load(f)
  first = manifest["inputs"][0]
  assert first["name"] == "NOTEEVENTS.csv.gz"
  with open(first["path"], "rb") as f:
    assert first["sha256"] == hashlib.sha256(f.read()).hexdigest()
  assert {i["option"] for i in manifest["inputs"]} >= {"--exclude-clip", "--exclude-radqa"}
  assert manifest["version"] and manifest["options"]["validation_fraction"] == 0.01
  assert sorted(os.listdir(out)) == sorted(
      ["manifest.json", "removed_subjects.csv", "stats.json"]
      + manifest["outputs"]["train"] + manifest["outputs"]["validation"])


def test_existing_output_needs_overwrite(synth_dir, full_build, capsys):
  out, _ = full_build
  assert cli.main(full_build_args(synth_dir, out)) == 2
  assert "--overwrite" in capsys.readouterr().err


def test_shards_and_overwrite(tmp_path):
  rows = [lib.mimic3_row(ROW_ID=i, SUBJECT_ID=i) for i in range(1, 41)]
  path = lib.write_noteevents(tmp_path / "N.csv", rows)
  (tmp_path / "out").mkdir()
  (tmp_path / "out" / "old.txt").write_text("old")
  config = build.BuildConfig(out=str(tmp_path / "out"), mimic3=path, num_shards=3,
                             validation_fraction=0.1, overwrite=True)
  with pytest.raises(UserError, match=r"previous corpus build output \(no stats.json\)"):
    build.build(config)
  assert os.listdir(tmp_path / "out") == ["old.txt"]

  (tmp_path / "out" / "stats.json").write_text("{}")
  stats = build.build(config)
  names = sorted(os.listdir(tmp_path / "out"))
  assert names == ["manifest.json", "removed_subjects.csv", "stats.json",
                   "train.tfrecord-00000-of-00003", "train.tfrecord-00001-of-00003",
                   "train.tfrecord-00002-of-00003", "validation.tfrecord-00000-of-00001"]
  assert stats["splits"] == {"train": {"notes": 36, "shards": 3},
                             "validation": {"notes": 4, "shards": 1}}


def test_validation_split_is_deterministic():
  subjects = list(range(1000, 1200))
  import numpy as np  # pylint: disable=g-import-not-at-top
  first = build.choose_validation_subjects(np.array(subjects), 0.05, seed=0)
  assert len(first) == 10
  assert list(first) == list(build.choose_validation_subjects(np.array(subjects[::-1]), 0.05, 0))
  assert list(first) != list(build.choose_validation_subjects(np.array(subjects), 0.05, 1))


def own_rows():
  return [{"doc": "a1", "patient": 7, "body": "Seen [**First Name 1**] and ___.", "kind": "ED"},
          {"doc": "a2", "patient": 8, "body": "{\\rtf1 junk", "kind": "ED"}]


@pytest.mark.parametrize("suffix", ["csv", "parquet", "jsonl"])
def test_own_notes_with_column_mapping(tmp_path, suffix):
  path = tmp_path / f"own.{suffix}"
  if suffix == "csv":
    lib.write_csv(path, ["doc", "patient", "body", "kind"], own_rows())
  elif suffix == "parquet":
    pq.write_table(pa.Table.from_pylist(own_rows()), path)
  else:
    path.write_text("".join(json.dumps(r) + "\n" for r in own_rows()))
  stats, records = lib.build_corpus(
      tmp_path, own_notes=str(path), own_id_column="doc", own_subject_column="patient",
      own_text_column="body", own_category_column="kind", own_placeholders="mimic3")
  assert records == {"a1": {"text": b"Seen [Name] and ___.", "note_id": b"a1",
                            "subject_id": 7, "source": b"own", "category": b"ED"}}
  assert stats["input_rows"]["own"] == 2
  assert stats["dropped"]["binary_junk"] == 1


def test_mimic4_annotations_give_types(tmp_path):
  notes = lib.write_csv(tmp_path / "discharge.csv.gz", lib.MIMIC4_HEADER, [
      lib.mimic4_row("10000001-DS-1", 10000001, "Name: ___ Date: ___ Dr. ___"),
      lib.mimic4_row("10000002-DS-1", 10000002, "Unit: ___")])
  annotations = lib.write_csv(tmp_path / "ann.csv", ["note_id", "entity_type"], [
      {"note_id": "10000001-DS-1", "entity_type": "NAME"},
      {"note_id": "10000002-DS-1", "entity_type": "ID"},
      {"note_id": "10000001-DS-1", "entity_type": "DATE"}])
  stats, records = lib.build_corpus(tmp_path, mimic4_discharge=notes,
                                    mimic4_discharge_annotations=annotations)
  assert records["10000001-DS-1"]["text"] == b"Name: [Name] Date: [DR] Dr. [MISC]"
  assert records["10000002-DS-1"]["text"] == b"Unit: [Reg#]"
  assert stats["placeholders"]["mimic4"] == 4
  assert stats["tags"]["[MISC]"] == 1


def test_keep_placeholders(tmp_path):
  text = "Seen [**First Name 1**] on [**2101-5-25**]."
  path = lib.write_noteevents(tmp_path / "N.csv", [lib.mimic3_row(TEXT=text)])
  stats, records = lib.build_corpus(tmp_path, mimic3=path, keep_placeholders=True)
  assert records["1"]["text"] == text.encode()
  assert stats["placeholders"]["mimic3"] == 0


@pytest.mark.parametrize("options,message", [
    ({}, "no input notes"),
    ({"mimic3": "x", "validation_fraction": 1.0}, "--validation-fraction"),
    ({"mimic3": "x", "num_shards": 0}, "--num-shards"),
    ({"mimic3": "x", "mimic4_radiology_annotations": "a"}, "needs --mimic4-radiology"),
])
def test_config_validation(options, message):
  with pytest.raises(UserError, match=message):
    build.BuildConfig(out="o", **options)


def test_out_containing_an_input_rejected(tmp_path, capsys):
  # --overwrite replaces --out as a whole; an input inside it would be deleted.
  data = tmp_path / "mimic-iii"
  data.mkdir()
  path = lib.write_noteevents(data / "NOTEEVENTS.csv", [lib.mimic3_row()])
  for out in (data, tmp_path):
    code = cli.main(["corpus", "build", "--mimic3", path, "--out", str(out), "--overwrite"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "contains the input --mimic3" in err
    assert os.path.exists(path)


@pytest.mark.parametrize("option, value", [("memory_limit", "1GB'; SELECT 1; --"),
                                           ("memory_limit", "lots"), ("threads", 0),
                                           ("threads", -2)])
def test_engine_options_validated(tmp_path, option, value):
  path = lib.write_noteevents(tmp_path / "N.csv", [lib.mimic3_row()])
  with pytest.raises(UserError, match=option.replace("_", "-")):
    build.BuildConfig(out=str(tmp_path / "out"), mimic3=path, **{option: value})
