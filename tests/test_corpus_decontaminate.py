"""Tests of the removal of evaluation-set patients (CLIP, RadQA, subject lists)."""

import csv
import json

import pytest

import corpus_testlib as lib
from clinical_t5.errors import UserError

ROWS = [lib.mimic3_row(ROW_ID=row_id, SUBJECT_ID=subject, CATEGORY=category)
        for row_id, subject, category in [(1, 1, "Discharge summary"), (2, 1, "Nursing"),
                                          (3, 2, "Radiology"), (4, 2, "Nursing"),
                                          (5, 3, "Nursing"), (6, 4, "Nursing"),
                                          (7, 5, "Nursing")]]


def radqa_document(titles):
  return {"version": "1.0", "data": [
      {"title": str(t), "paragraphs": [{"context": "FINDINGS: none.", "qas": [
          {"id": f"{t}_1", "question": "Any?", "answers": [], "is_impossible": True}]}]}
      for t in titles]}


@pytest.fixture
def data(tmp_path):
  clip = tmp_path / "clip"
  clip.mkdir()
  lib.write_ids(clip / "train_ids.csv", [1])
  lib.write_ids(clip / "test_ids.csv", [404])  # not in NOTEEVENTS: a warning only
  radqa = tmp_path / "radqa"
  radqa.mkdir()
  (radqa / "dev.json").write_text(json.dumps(radqa_document([3])))
  mimic4 = lib.write_csv(tmp_path / "radiology.csv", lib.MIMIC4_HEADER, [
      lib.mimic4_row("10000009-RR-1", 10000009, "CXR ok.", "RR"),
      lib.mimic4_row("10000010-RR-1", 10000010, "CXR ok.", "RR")])
  return {"mimic3": lib.write_noteevents(tmp_path / "NOTEEVENTS.csv", ROWS),
          "mimic4_radiology": mimic4, "overlap_rule": False,
          "exclude_clip": str(clip), "exclude_radqa": str(radqa),
          "exclude_subjects": (lib.write_ids(tmp_path / "n2c2.csv", [3, 10000009], "subject_id"),
                               lib.write_ids(tmp_path / "more.csv", [3, 4]))}


def test_every_source_removed(tmp_path, data):
  stats, records = lib.build_corpus(tmp_path, **data)
  assert sorted(records) == ["10000010-RR-1", "7"]
  assert stats["removed_subjects"] == 5
  assert stats["dropped"]["removed_subject"] == 7
  with open(tmp_path / "out" / "removed_subjects.csv") as f:
    assert list(csv.reader(f)) == [["subject_id", "reason"], ["1", "clip"], ["2", "radqa"],
                                   ["3", "more.csv;n2c2.csv"], ["4", "more.csv"],
                                   ["10000009", "n2c2.csv"]]


def test_clip_file_with_text_rejected(tmp_path, data):
  with open(tmp_path / "clip" / "val_ids.csv", "w") as f:
    f.write(f"5\nPatient {lib.PHI_MARKER} was seen\n")
  with pytest.raises(UserError, match=r"val_ids.csv: line 2 is not an integer id") as error:
    lib.build_corpus(tmp_path, **data)
  assert lib.PHI_MARKER not in str(error.value)
  assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("document,message", [
    ({"version": "1"}, "no top-level \"data\" list"),
    ({"data": [{"paragraphs": []}]}, r"data\[0\] lacks \"title\""),
    ({"data": [{"title": "12a", "paragraphs": []}]}, r"data\[0\].title is not an integer"),
    ({"data": [{"title": "1", "paragraphs": [{"context": "x"}]}]}, "lacks a \"qas\" list"),
])
def test_radqa_not_squad_rejected(tmp_path, data, document, message):
  (tmp_path / "radqa" / "test.json").write_text(json.dumps(document))
  with pytest.raises(UserError, match=message):
    lib.build_corpus(tmp_path, **data)


def test_radqa_invalid_json_rejected(tmp_path, data):
  (tmp_path / "radqa" / "test.json").write_text('{"data": [')
  with pytest.raises(UserError, match="invalid JSON at line 1"):
    lib.build_corpus(tmp_path, **data)


def test_clip_needs_mimic3(tmp_path, data):
  data.pop("mimic3")
  with pytest.raises(UserError, match="pass --mimic3 too"):
    lib.build_corpus(tmp_path, **data)
