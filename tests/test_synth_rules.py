"""Tests that `expected_corpus` equals an independent pandas run of the corpus rules on the files."""

import collections
import json
import re

import pandas as pd
import pytest

from clinical_t5.synth import phi
from clinical_t5.synth import rules

# The tag map in its documented key order (the Clinical-T5 `DEID_TO_TAG`).
DEID_TO_TAG = [
    ("First Name", "[Name]"), ("Last Name", "[Name]"), ("Initials", "[Name]"),
    ("Known lastname", "[Name]"), ("Known firstname", "[Name]"), ("Name", "[Name]"),
    ("Clip Number (Radiology)", "[Reg#]"), ("Numeric Identifier", "[Reg#]"),
    ("Medical Record Number", "[Reg#]"), ("MD Number", "[Reg#]"), ("Job Number", "[Reg#]"),
    ("Unit Number", "[Reg#]"), ("Hospital", "[Company]"), ("Company", "[Company]"),
    ("College", "[Company]"), ("Location", "[LOC]"), ("Street Address", "[LOC]"),
    ("Wardname", "[LOC]"), ("Apartment Address", "[LOC]"), ("PO Box", "[LOC]"),
    ("Age over 90", "[Age]"), ("Telephone/Fax", "[#]"), ("Serial Number", "[#]"),
    ("Social Security Number", "[#]"), ("Pager number", "[#]"), ("Provider Number", "[#]"),
    ("Date Range", "[DR]"), ("Date range", "[DR]"), ("State", "[State]"),
    ("E-mail address", "[CI]"), ("CC Contact Info", "[CI]"), ("Attending Info", "[CI]"),
    ("Dictator Info", "[CI]"), ("Country", "[Country]"), ("URL", "[URL]"), ("Year", "[YR]"),
    ("Month", "[MO]"), ("Day", "[DAY]"), ("Holiday", "[DAY]")]
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december")
TAGS = ("[Name]", "[Reg#]", "[Company]", "[LOC]", "[Age]", "[#]", "[DR]", "[State]", "[CI]",
        "[Country]", "[URL]", "[YR]", "[MO]", "[DAY]", "[MISC]")


def convert(inner: str, case_insensitive: bool) -> str:
  """The tag rules in order; returns a tag, 'kept_as_text', 'empty' or 'unknown'."""
  for key, tag in DEID_TO_TAG:
    if key in inner or (case_insensitive and key.lower() in inner.lower()):
      return tag
  if len(inner.split("-")) == 3:
    return "kept_as_text"
  if inner.isnumeric():
    return "[Reg#]"
  if inner.replace("-", "").replace("/", "").isnumeric():
    return "kept_as_text"
  if any(m in inner.lower() for m in MONTHS):
    return "kept_as_text"
  if not inner.strip():
    return "empty"
  return "unknown"


@pytest.mark.parametrize("case_insensitive", [False, True])
def test_forms_follow_tag_rules(case_insensitive):
  import random  # pylint: disable=g-import-not-at-top
  rng = random.Random(0)
  for form, (_, _, outcome) in phi.FORMS.items():
    for _ in range(5):
      inner = phi.render_form(form, rng, 2151)
      assert convert(inner, case_insensitive) == outcome, form


def _read(synth_dir):
  notes = pd.read_csv(synth_dir / "mimic-iii/NOTEEVENTS.csv.gz", dtype=str, keep_default_na=False)
  m4 = {t: pd.read_csv(synth_dir / f"mimic-iv-note/{t}.csv.gz", dtype=str, keep_default_na=False)
        for t in ("discharge", "radiology")}
  carevue = set(pd.read_csv(synth_dir / "carevue_subject_ids.csv", dtype=str).subject_id)
  row_ids = []
  for name in ("train_ids.csv", "val_ids.csv", "test_ids.csv"):
    row_ids += pd.read_csv(synth_dir / "clip" / name, header=None, dtype=str)[0].tolist()
  for name in ("train.json", "dev.json", "test.json"):
    row_ids += [a["title"] for a in json.loads((synth_dir / "radqa" / name).read_text())["data"]]
  by_row = notes.set_index("ROW_ID").SUBJECT_ID
  removed = set(by_row.loc[row_ids])
  removed |= set(pd.read_csv(synth_dir / "n2c2_subject_ids.csv", dtype=str).subject_id)
  return notes, m4, carevue, removed


def _dedup_drop(df: pd.DataFrame) -> pd.Series:
  """Mark the rows that re-save removal drops (empty values filled with 'NaN', then grouped)."""
  filled = df.replace({"CHARTTIME": {"": "NaN"}, "CGID": {"": "NaN"}, "STORETIME": {"": "NaN"}})
  drop = pd.Series(False, index=df.index)
  for _, g in filled.groupby(["CHARTTIME", "SUBJECT_ID", "CATEGORY", "CGID"]):
    if len(g) == 1 or g.CHARTTIME.iloc[0] == "NaN" or (g.CGID == "NaN").any() or (g.STORETIME == "NaN").any():
      continue
    latest = pd.to_datetime(g.STORETIME, format="%Y-%m-%d %H:%M:%S").idxmax()
    drop[g.index.drop(latest)] = True
  return drop


def _pipeline(notes, m4, carevue, removed, order):
  dropped = collections.Counter()
  df = notes
  for step in order:
    if step == "iserror":
      mask = df.ISERROR == "1"
    elif step == "binary_junk":
      mask = df.TEXT.map(rules.is_binary_junk)
    elif step == "resave":
      mask = _dedup_drop(df)
    elif step == "overlap":
      mask = ~df.SUBJECT_ID.isin(carevue) & df.CATEGORY.isin(["Radiology", "Discharge summary"])
    else:
      mask = df.SUBJECT_ID.isin(removed)
    dropped[step] += int(mask.sum())
    df = df[~mask]
  m4_kept = {}
  for table, frame in m4.items():
    mask = frame.subject_id.isin(removed)
    dropped["removed_subject"] += int(mask.sum())
    m4_kept[table] = frame[~mask]
  return df, m4_kept, dropped


def test_expected_corpus_matches_reference(synth_dir):
  report = json.loads((synth_dir / "synth_report.json").read_text())
  expected = report["expected_corpus"]
  notes, m4, carevue, removed = _read(synth_dir)
  order = ["iserror", "binary_junk", "resave", "overlap", "removed_subject"]
  kept, m4_kept, dropped = _pipeline(notes, m4, carevue, removed, order)

  assert expected["input_rows"] == {"mimic3": len(notes), "mimic4_discharge": len(m4["discharge"]),
                                    "mimic4_radiology": len(m4["radiology"]), "own": 0}
  assert expected["dropped"] == {k: dropped[k] for k in order}
  assert expected["removed_subjects"] == len(removed)
  assert expected["output_notes"] == {"mimic3": len(kept), "mimic4_discharge": len(m4_kept["discharge"]),
                                      "mimic4_radiology": len(m4_kept["radiology"]), "own": 0}

  outcomes = collections.Counter(convert(inner, False) for text in kept.TEXT
                                 for inner in re.findall(r"\[\*\*(.*?)\*\*\]", text))
  runs = sum(len(re.findall(r"____*", t)) for f in m4_kept.values() for t in f.text)
  tags = {tag: outcomes[tag] for tag in TAGS}
  tags["[MISC]"] += outcomes["unknown"] + runs
  assert expected["tags"] == tags
  assert expected["placeholders"] == {
      "mimic3": sum(outcomes.values()), "mimic4": runs, "kept_as_text": outcomes["kept_as_text"],
      "empty": outcomes["empty"], "unknown": outcomes["unknown"]}
  assert all(v > 0 for v in expected["dropped"].values())
  assert all(tags[t] > 0 for t in TAGS)


def test_drop_counts_order_independent(synth_dir):
  notes, m4, carevue, removed = _read(synth_dir)
  forward = ["iserror", "binary_junk", "resave", "overlap", "removed_subject"]
  _, _, a = _pipeline(notes, m4, carevue, removed, forward)
  _, _, b = _pipeline(notes, m4, carevue, removed, forward[::-1])
  assert a == b


def test_dedup_subject_branches():
  def row(charttime, cgid, storetime, text="x"):
    return rules.Row(1, "", "2151-01-01", charttime, storetime, "Nursing/other", "Report", cgid,
                     "", text, collections.Counter())
  t = "2151-01-01 10:00:00"
  keep, tally = rules.dedup_subject([row(t, "5", "2151-01-01 10:05:00"), row(t, "5", "2151-01-01 11:00:00")])
  assert keep == [False, True]
  assert tally["resave_groups"] == 1
  keep, tally = rules.dedup_subject([row("", "5", "2151-01-01 10:05:00"), row("", "5", "2151-01-01 11:00:00")])
  assert keep == [True, True]
  assert tally["kept_whole_charttime_empty"] == 1
  keep, _ = rules.dedup_subject([row(t, "", "2151-01-01 10:05:00"), row(t, "", "2151-01-01 11:00:00")])
  assert keep == [True, True]
  keep, _ = rules.dedup_subject([row(t, "5", ""), row(t, "5", "2151-01-01 11:00:00")])
  assert keep == [True, True]
  with pytest.raises(AssertionError):
    rules.dedup_subject([row(t, "5", "2151-01-01 10:05:00"), row(t, "5", "2151-01-01 10:05:00")])


def test_binary_junk_rule_threshold():
  assert rules.is_binary_junk("{\\rtf1 hello")
  assert not rules.is_binary_junk("Vitals stable.\tHR 80\r\n")
  assert rules.is_binary_junk("\x01" * 6 + "a" * 94)
  assert not rules.is_binary_junk("\x01" * 5 + "a" * 95)


def test_binary_junk_counts_c1_controls():
  # Unicode Cc includes U+007F-U+009F; the corpus builder counts them, so the
  # generator's ground truth must count them too.
  from clinical_t5.corpus import junk  # pylint: disable=g-import-not-at-top
  for text in ("\x85" * 6 + "a" * 94, "\x9f" * 6 + "a" * 94, "\x80\x81" * 3 + "a" * 94,
               "\x85" * 5 + "a" * 95, "caf\u00e9 \u00a0" * 20):
    assert rules.is_binary_junk(text) == junk.is_binary_junk(text), repr(text[:4])
