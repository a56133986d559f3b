"""Tests of the synthetic data set's formats, row counts and planted quirks (seed 0, scale 1)."""

import ast
import collections
import csv
import gzip
import io
import json
import re

import pandas as pd
import pytest

from clinical_t5.synth import rules
from clinical_t5.synth import tasks_data

M3_COLUMNS = ["ROW_ID", "SUBJECT_ID", "HADM_ID", "CHARTDATE", "CHARTTIME", "STORETIME",
              "CATEGORY", "DESCRIPTION", "CGID", "ISERROR", "TEXT"]
M4_COLUMNS = ["note_id", "subject_id", "hadm_id", "note_type", "note_seq", "charttime",
              "storetime", "text"]
CATEGORIES = ['Case Management ', 'Consult', 'Discharge summary', 'ECG', 'Echo', 'General',
              'Nursing', 'Nursing/other', 'Nutrition', 'Pharmacy', 'Physician ', 'Radiology',
              'Rehab Services', 'Respiratory ', 'Social Work']
EXPECTED_FILES = [
    "mimic-iii/NOTEEVENTS.csv", "mimic-iii/NOTEEVENTS.csv.gz", "mimic-iii/ICUSTAYS.csv",
    "mimic-iii-carevue/NOTEEVENTS.csv", "carevue_subject_ids.csv",
    "mimic-iv-note/discharge.csv.gz", "mimic-iv-note/radiology.csv.gz",
    "mimic-iv-note/discharge_annotation.csv", "mimic-iv-note/radiology_annotation.csv",
    "mednli/mli_train_v1.jsonl", "mednli/mli_dev_v1.jsonl", "mednli/mli_test_v1.jsonl",
    "radqa/train.json", "radqa/dev.json", "radqa/test.json", "clip/sentence_level.csv",
    "clip/train_ids.csv", "clip/val_ids.csv", "clip/test_ids.csv", "n2c2_subject_ids.csv"]


@pytest.fixture(scope="module")
def report(synth_dir):
  return json.loads((synth_dir / "synth_report.json").read_text())


def _csv_rows(path) -> list[list[str]]:
  opener = gzip.open if str(path).endswith(".gz") else open
  with opener(path, "rt", encoding="utf-8", newline="") as f:
    return list(csv.reader(f))


@pytest.fixture(scope="module")
def notes(synth_dir) -> pd.DataFrame:
  return pd.read_csv(synth_dir / "mimic-iii/NOTEEVENTS.csv", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def mimic4(synth_dir) -> dict[str, pd.DataFrame]:
  return {t: pd.read_csv(synth_dir / f"mimic-iv-note/{t}.csv.gz", dtype=str, keep_default_na=False)
          for t in ("discharge", "radiology")}


def test_layout_exact(synth_dir, report):
  files = sorted(str(p.relative_to(synth_dir)) for p in synth_dir.rglob("*") if p.is_file())
  assert files == sorted(EXPECTED_FILES + ["synth_report.json"])
  assert sorted(report["files"]) == sorted(EXPECTED_FILES)


@pytest.mark.parametrize("rel", [f for f in EXPECTED_FILES if f.endswith((".csv", ".csv.gz"))])
def test_csv_module_parses_counts(synth_dir, report, rel):
  rows = _csv_rows(synth_dir / rel)
  info = report["files"][rel]
  if info.get("header", True):
    assert rows[0] == info["columns"]
    rows = rows[1:]
  assert len(rows) == info["rows"]
  assert all(len(r) == len(info["columns"]) for r in rows)


@pytest.mark.parametrize("rel", [f for f in EXPECTED_FILES if f.endswith((".csv", ".csv.gz"))])
def test_pandas_parses_counts(synth_dir, report, rel):
  info = report["files"][rel]
  header = 0 if info.get("header", True) else None
  df = pd.read_csv(synth_dir / rel, dtype=str, keep_default_na=False, header=header)
  assert len(df) == info["rows"]
  if header == 0:
    assert list(df.columns) == info["columns"]
  else:
    assert df.shape[1] == 1


@pytest.mark.parametrize("rel", ["mednli/mli_train_v1.jsonl", "mednli/mli_dev_v1.jsonl",
                                 "mednli/mli_test_v1.jsonl"])
def test_mednli_jsonl_keys(synth_dir, report, rel):
  lines = (synth_dir / rel).read_text(encoding="utf-8").splitlines()
  records = [json.loads(line) for line in lines]
  assert len(records) == report["files"][rel]["rows"]
  assert all(list(r) == report["files"][rel]["columns"] for r in records)
  assert len(pd.read_json(synth_dir / rel, lines=True)) == len(records)


def test_gz_same_bytes_fixed_header(synth_dir):
  plain = (synth_dir / "mimic-iii/NOTEEVENTS.csv").read_bytes()
  packed = (synth_dir / "mimic-iii/NOTEEVENTS.csv.gz").read_bytes()
  assert gzip.decompress(packed) == plain
  for rel in ("mimic-iii/NOTEEVENTS.csv.gz", "mimic-iv-note/discharge.csv.gz"):
    head = (synth_dir / rel).read_bytes()[:10]
    assert head[3] & 0x08 == 0, "FNAME flag set"
    assert head[4:8] == b"\0\0\0\0", "mtime is not 0"


def test_rfc4180_quoting(synth_dir, notes):
  raw = (synth_dir / "mimic-iii/NOTEEVENTS.csv").read_bytes()
  assert raw.startswith(b'"ROW_ID","SUBJECT_ID",')
  assert b'""I want to go home, now.""' in raw          # doubled quotes
  assert b"\r\n" in raw                                  # CRLF inside some fields
  crlf = notes["TEXT"].str.contains("\r\n", regex=False)
  assert crlf.sum() > 0
  assert (~crlf).sum() > 0
  assert notes["TEXT"].str.contains(",").mean() > 0.5


def test_categories_trailing_space(notes, report):
  assert sorted(notes["CATEGORY"].unique()) == sorted(CATEGORIES)
  counts = notes["CATEGORY"].value_counts().to_dict()
  assert counts == {k: v for k, v in report["planted"]["categories"].items() if v}


def test_iserror_rows(notes, report):
  assert set(notes["ISERROR"]) == {"", "1"}
  assert (notes["ISERROR"] == "1").sum() == report["planted"]["iserror_rows"] > 0


def test_resave_groups_edited(notes, report):
  keyed = notes[(notes.CHARTTIME != "") & (notes.CGID != "") & (notes.STORETIME != "")
                & (notes.ISERROR == "")]
  groups = [g for _, g in keyed.groupby(["CHARTTIME", "SUBJECT_ID", "CATEGORY", "CGID"]) if len(g) > 1]
  assert len(groups) == report["planted"]["resave_groups"] > 0
  assert sum(len(g) - 1 for g in groups) == report["planted"]["resave_rows_dropped"]
  edited = 0
  for g in groups:
    times = sorted(g.STORETIME)
    assert times[-1] != times[-2], "tie in latest STORETIME"
    texts = list(g.sort_values("STORETIME").TEXT)
    edited += texts[0] != texts[-1]
    words_a, words_b = texts[0].split(), texts[-1].split()
    assert abs(len(words_a) - len(words_b)) <= 12
  assert edited > 0


def test_empty_fields_and_kept_groups(notes, report):
  planted = report["planted"]
  assert (notes.CHARTTIME == "").sum() == planted["empty_charttime_rows"] > 0
  assert (notes.CGID == "").sum() == planted["empty_cgid_rows"] > 0
  assert (notes.STORETIME == "").sum() == planted["empty_storetime_rows"] > 0
  assert all(v > 0 for v in planted["kept_whole_groups"].values())
  both = notes[(notes.CHARTTIME != "") & (notes.CGID == "")]
  assert both.duplicated(["CHARTTIME", "SUBJECT_ID", "CATEGORY"]).any()   # cgid_empty group


def test_binary_junk_rule(notes, report):
  junk = notes[notes.TEXT.map(rules.is_binary_junk)]
  assert junk.TEXT.str.contains("{\\rtf", regex=False).sum() == report["planted"]["binary_junk_kinds"]["rtf"] > 0
  assert (~junk.TEXT.str.contains("{\\rtf", regex=False)).sum() == report["planted"]["binary_junk_kinds"]["control"] > 0
  assert len(junk) == report["planted"]["binary_junk_notes"]
  assert not any("\0" in t for t in notes.TEXT)


PLACEHOLDER = re.compile(r"\[\*\*(.*?)\*\*\]")


def test_placeholder_forms_present(notes, report):
  inner = collections.Counter(m for t in notes.TEXT for m in PLACEHOLDER.findall(t))
  assert any(re.fullmatch(r"2\d{3}-\d{1,2}-\d{1,2}", k) for k in inner)   # [**2101-5-25**]
  assert any(re.fullmatch(r"2\d{3}", k) for k in inner)                    # [**2101**]
  assert any(re.fullmatch(r"\d{1,2}-\d{1,2}", k) for k in inner)           # [**5-25**]
  assert inner[" "] == report["planted"]["placeholders_mimic3"]["empty"] > 0
  assert any(k.startswith("Month/Day/Year") for k in inner)
  assert inner["___"] > 0 and any(k.startswith("Radiology Tech") for k in inner)
  assert sum(inner.values()) == sum(report["planted"]["placeholders_mimic3"].values())
  assert all(n > 0 for n in report["planted"]["placeholder_forms_mimic3"].values())


def test_two_placeholders_one_line(notes, report):
  lines = sum(1 for t in notes.TEXT for line in t.split("\n") if len(PLACEHOLDER.findall(line)) >= 2)
  assert lines == report["planted"]["lines_with_two_placeholders"] > 0


def test_long_nonascii_braces_tabs(notes, report):
  planted = report["planted"]
  assert (notes.TEXT.map(lambda t: len(t.encode()) > 10240)).sum() == planted["notes_over_10kb"] > 0
  assert (~notes.TEXT.map(str.isascii)).sum() == planted["non_ascii_notes"] > 0
  assert notes.TEXT.str.contains("\t").sum() == planted["notes_with_tabs"] > 0
  assert notes.TEXT.str.contains("{", regex=False).sum() > 0
  assert notes.TEXT.str.contains("~", regex=False).sum() == planted["notes_with_tilde"] > 0


def test_subject_ids_and_carevue(synth_dir, notes, mimic4):
  assert notes.SUBJECT_ID.astype(int).max() < 100000
  for df in mimic4.values():
    assert df.subject_id.astype(int).min() >= 10000000
  listed = set(pd.read_csv(synth_dir / "carevue_subject_ids.csv").subject_id.astype(str))
  icu = pd.read_csv(synth_dir / "mimic-iii/ICUSTAYS.csv", dtype=str, keep_default_na=False)
  assert set(icu.DBSOURCE) == {"carevue", "metavision", "both"}
  assert set(icu[icu.DBSOURCE == "carevue"].SUBJECT_ID) == listed
  subset = pd.read_csv(synth_dir / "mimic-iii-carevue/NOTEEVENTS.csv", dtype=str, keep_default_na=False)
  assert set(subset.SUBJECT_ID) == listed
  expected = notes[notes.SUBJECT_ID.isin(listed)].reset_index(drop=True)
  pd.testing.assert_frame_equal(subset, expected)


def test_mimic4_note_ids_and_runs(synth_dir, mimic4, report):
  runs = 0
  for table, types in (("discharge", {"DS", "AD"}), ("radiology", {"RR", "AR"})):
    df = mimic4[table]
    assert set(df.note_type) == types
    assert (df.note_id == df.subject_id + "-" + df.note_type + "-" + df.note_seq).all()
    assert df.note_id.is_unique
    ann = pd.read_csv(synth_dir / f"mimic-iv-note/{table}_annotation.csv", dtype=str)
    per_note = df.text.map(lambda t: len(re.findall(r"____*", t)))
    assert ann.note_id.value_counts().reindex(df.note_id, fill_value=0).tolist() == per_note.tolist()
    runs += per_note.sum()
  assert runs == report["planted"]["mimic4_underscore_runs"]
  ds = mimic4["discharge"][mimic4["discharge"].note_type == "DS"]
  headers = ds.text.map(lambda t: t.split("Sex:")[0])
  assert headers.str.contains("Name:  ___").all()
  assert any("_____" in t for t in mimic4["discharge"].text)
  assert (mimic4["discharge"].text.map(lambda t: len(t.encode()) > 10240)).sum() > 0


def test_mednli_labels_learnable(synth_dir):
  records = [json.loads(l) for l in (synth_dir / "mednli/mli_test_v1.jsonl").read_text().splitlines()]
  labels = collections.Counter(r["gold_label"] for r in records)
  assert set(labels) == {"entailment", "contradiction", "neutral"}
  assert 0.36 < max(labels.values()) / len(records) < 0.6
  cue = {"entailment": ("has", "carries"), "contradiction": ("no history", "never", "denies"),
         "neutral": ("may", "family", "will")}
  for r in records:
    assert any(w in r["sentence2"] for w in cue[r["gold_label"]])


def test_radqa_squad_v2(synth_dir, notes):
  radiology = notes[notes.CATEGORY == "Radiology"].set_index("ROW_ID")
  questions = impossible = 0
  for name in ("train.json", "dev.json", "test.json"):
    data = json.loads((synth_dir / "radqa" / name).read_text())
    assert list(data) == ["version", "data"]
    for article in data["data"]:
      note = radiology.loc[article["title"]].TEXT
      for paragraph in article["paragraphs"]:
        context = paragraph["context"]
        assert context in note
        for qa in paragraph["qas"]:
          questions += 1
          assert list(qa) == ["id", "question", "answers", "is_impossible"]
          impossible += qa["is_impossible"]
          assert qa["is_impossible"] == (not qa["answers"])
          for a in qa["answers"]:
            assert context[a["answer_start"]:a["answer_start"] + len(a["text"])] == a["text"]
      assert "[**" in article["paragraphs"][0]["context"]
  assert questions >= 250
  assert 0 < impossible < questions


def test_clip_format(synth_dir, notes):
  df = pd.read_csv(synth_dir / "clip/sentence_level.csv", dtype=str, keep_default_na=False)
  assert list(df.columns) == ["doc_id", "sent_index", "sentence", "labels"]
  summaries = set(notes[notes.CATEGORY == "Discharge summary"].ROW_ID)
  assert set(df.doc_id) <= summaries
  seen = set()
  for sentence, labels in zip(df.sentence, df.labels):
    tokens, label_list = ast.literal_eval(sentence), ast.literal_eval(labels)
    assert tokens and all(isinstance(t, str) and t for t in tokens)
    assert set(label_list) <= set(tasks_data.CLIP_LABELS)
    seen.update(label_list)
  assert seen == set(tasks_data.CLIP_LABELS)
  ids = []
  for name in ("train_ids.csv", "val_ids.csv", "test_ids.csv"):
    ids += (synth_dir / "clip" / name).read_text().split()
  assert sorted(ids) == sorted(set(df.doc_id))
  assert len(ids) == len(set(ids))


def test_task_patients_have_notes(synth_dir, notes, mimic4, report):
  n2c2 = set(pd.read_csv(synth_dir / "n2c2_subject_ids.csv", dtype=str).subject_id)
  with_notes = set(notes.SUBJECT_ID) | set(mimic4["discharge"].subject_id)
  assert n2c2 <= with_notes
  assert any(int(s) >= 10000000 for s in n2c2) and any(int(s) < 100000 for s in n2c2)
  assert report["planted"]["task_subjects_with_notes"] == report["expected_corpus"]["removed_subjects"]


def test_word_tokenize_like_nltk():
  tokens = tasks_data.word_tokenize("Follow up with Dr. [**Last Name (STitle) 123**] in 2 weeks.")
  assert tokens == ["Follow", "up", "with", "Dr.", "[", "**Last", "Name", "(", "STitle", ")",
                    "123**", "]", "in", "2", "weeks", "."]
  assert tasks_data.word_tokenize("Don't stop, it's 10:30.") == ["Do", "n't", "stop", ",", "it", "'s", "10:30", "."]
