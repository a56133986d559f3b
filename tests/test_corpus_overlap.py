"""Tests of the MIMIC-III/IV overlap rule and the three CareVue list formats."""

import pytest

import corpus_testlib as lib
from clinical_t5 import cli
from clinical_t5.corpus import overlap
from clinical_t5.errors import UserError

# Subject 1 is CareVue, subject 2 is not.
ROWS = [lib.mimic3_row(ROW_ID=10 + i, SUBJECT_ID=s, CATEGORY=c)
        for i, (s, c) in enumerate([(1, "Radiology"), (1, "Discharge summary"), (1, "Nursing"),
                                    (2, "Radiology"), (2, "Discharge summary"), (2, "Nursing"),
                                    (2, "Physician ")])]


@pytest.fixture
def inputs(tmp_path):
  mimic3 = lib.write_noteevents(tmp_path / "NOTEEVENTS.csv", ROWS)
  mimic4 = lib.write_csv(tmp_path / "discharge.csv.gz", lib.MIMIC4_HEADER,
                         [lib.mimic4_row("10000001-DS-1", 10000001, "Discharged.")])
  return mimic3, mimic4


def carevue_files(tmp_path):
  icustays = lib.write_csv(tmp_path / "ICUSTAYS.csv", ["ROW_ID", "SUBJECT_ID", "DBSOURCE"],
                           [{"ROW_ID": 1, "SUBJECT_ID": 1, "DBSOURCE": "carevue"},
                            {"ROW_ID": 2, "SUBJECT_ID": 2, "DBSOURCE": "carevue"},
                            {"ROW_ID": 3, "SUBJECT_ID": 2, "DBSOURCE": "metavision"},
                            {"ROW_ID": 4, "SUBJECT_ID": 3, "DBSOURCE": "both"}])
  subset = lib.write_noteevents(tmp_path / "carevue_NOTEEVENTS.csv",
                                [lib.mimic3_row(ROW_ID=99, SUBJECT_ID=1)])
  return {"list": lib.write_ids(tmp_path / "ids.csv", [1], header="subject_id"),
          "headerless": lib.write_ids(tmp_path / "ids.txt", [1]),
          "noteevents": subset, "icustays": icustays}


@pytest.mark.parametrize("kind", ["list", "headerless", "noteevents", "icustays"])
def test_carevue_patients_keep_everything(tmp_path, inputs, kind):
  mimic3, mimic4 = inputs
  stats, records = lib.build_corpus(tmp_path, mimic3=mimic3, mimic4_discharge=mimic4,
                                    carevue_subjects=carevue_files(tmp_path)[kind])
  assert sorted(records) == ["10", "10000001-DS-1", "11", "12", "15", "16"]
  assert stats["dropped"]["overlap"] == 2
  assert stats["output"]["mimic4_discharge"]["notes"] == 1


def test_missing_list_explains_choice(tmp_path, inputs, capsys):
  mimic3, mimic4 = inputs
  code = cli.main(["corpus", "build", "--mimic3", mimic3, "--mimic4-discharge", mimic4,
                   "--out", str(tmp_path / "out")])
  err = capsys.readouterr().err
  assert code == 2
  assert "--carevue-subjects" in err and "--no-overlap-rule" in err
  assert len(err.strip().splitlines()) == 1
  assert not (tmp_path / "out").exists()


def test_no_overlap_rule_keeps_all(tmp_path, inputs):
  mimic3, mimic4 = inputs
  stats, records = lib.build_corpus(tmp_path, mimic3=mimic3, mimic4_discharge=mimic4,
                                    overlap_rule=False)
  assert len(records) == len(ROWS) + 1
  assert stats["dropped"]["overlap"] == 0


def test_mimic3_alone_needs_no_list(tmp_path, inputs):
  stats, records = lib.build_corpus(tmp_path, mimic3=inputs[0])
  assert len(records) == len(ROWS)


def test_unknown_carevue_file_rejected(tmp_path, inputs):
  other = lib.write_csv(tmp_path / "other.csv", ["a", "b"], [{"a": 1, "b": 2}])
  with pytest.raises(UserError, match="not a subject-id list"):
    lib.build_corpus(tmp_path, mimic3=inputs[0], mimic4_discharge=inputs[1],
                     carevue_subjects=other)


@pytest.mark.parametrize("header", [b"subject_id", b"7"])
def test_id_list_with_byte_order_mark(tmp_path, header):
  # Excel writes UTF-8 CSVs with a byte order mark before the first line.
  path = tmp_path / "ids.csv"
  path.write_bytes(b"\xef\xbb\xbf" + header + b"\r\n8\r\n")
  ids = overlap.read_id_lines(str(path), "--exclude-subjects", ("subject_id",))
  assert ids == ([8] if header == b"subject_id" else [7, 8])
