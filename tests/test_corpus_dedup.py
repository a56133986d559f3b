"""Tests of the MIMIC-III re-save removal, one fixture per branch of the rule."""

import pytest

import corpus_testlib as lib
from clinical_t5.errors import UserError

T0, T1, T2 = "2150-01-01 10:05:00", "2150-01-01 10:30:00", "2150-01-01 11:00:00"


def kept_ids(tmp_path, rows):
  path = lib.write_noteevents(tmp_path / "NOTEEVENTS.csv", rows)
  stats, records = lib.build_corpus(tmp_path, mimic3=path)
  return stats, sorted(int(i) for i in records)


def test_group_keeps_latest_storetime(tmp_path):
  stats, ids = kept_ids(tmp_path, [lib.mimic3_row(ROW_ID=1, STORETIME=T1),
                                   lib.mimic3_row(ROW_ID=2, STORETIME=T2),
                                   lib.mimic3_row(ROW_ID=3, STORETIME=T0)])
  assert ids == [2]
  assert stats["dropped"]["resave"] == 2


def test_single_row_groups_kept(tmp_path):
  stats, ids = kept_ids(tmp_path, [
      lib.mimic3_row(ROW_ID=1), lib.mimic3_row(ROW_ID=2, SUBJECT_ID=11),
      lib.mimic3_row(ROW_ID=3, CATEGORY="Physician "), lib.mimic3_row(ROW_ID=4, CGID=2),
      lib.mimic3_row(ROW_ID=5, CHARTTIME="2150-01-02 10:00:00")])
  assert ids == [1, 2, 3, 4, 5]
  assert stats["dropped"]["resave"] == 0


@pytest.mark.parametrize("empty_field", ["CHARTTIME", "CGID"])
def test_empty_key_keeps_whole_group(tmp_path, empty_field):
  rows = [lib.mimic3_row(ROW_ID=i, STORETIME=t, **{empty_field: ""})
          for i, t in ((1, T0), (2, T1))]
  assert kept_ids(tmp_path, rows)[1] == [1, 2]


def test_one_empty_storetime_keeps_whole_group(tmp_path):
  rows = [lib.mimic3_row(ROW_ID=1, STORETIME=T0), lib.mimic3_row(ROW_ID=2, STORETIME=T1),
          lib.mimic3_row(ROW_ID=3, STORETIME="")]
  assert kept_ids(tmp_path, rows)[1] == [1, 2, 3]


def test_iserror_dropped_before_grouping(tmp_path):
  stats, ids = kept_ids(tmp_path, [lib.mimic3_row(ROW_ID=1, STORETIME=T0),
                                   lib.mimic3_row(ROW_ID=2, STORETIME=T1, ISERROR="1")])
  assert ids == [1]
  assert stats["dropped"] == {"iserror": 1, "binary_junk": 0, "resave": 0, "overlap": 0,
                              "removed_subject": 0}


def test_junk_dropped_before_grouping(tmp_path):
  stats, ids = kept_ids(tmp_path, [lib.mimic3_row(ROW_ID=1, STORETIME=T0),
                                   lib.mimic3_row(ROW_ID=2, STORETIME=T1, TEXT="{\\rtf1 x")])
  assert ids == [1]
  assert stats["dropped"]["binary_junk"] == 1
  assert stats["dropped"]["resave"] == 0


def test_storetime_tie_keeps_highest_row_id(tmp_path):
  assert kept_ids(tmp_path, [lib.mimic3_row(ROW_ID=1), lib.mimic3_row(ROW_ID=2)])[1] == [2]


def test_bad_storetime_names_row(tmp_path):
  rows = [lib.mimic3_row(ROW_ID=1), lib.mimic3_row(ROW_ID=7, STORETIME="yesterday")]
  with pytest.raises(UserError, match="ROW_ID 7 has a STORETIME"):
    kept_ids(tmp_path, rows)
  assert not (tmp_path / "out").exists()
