"""The corpus rules applied to planted ground truth, and the tallies behind the report.

For every row it writes, the generator records which placeholder forms it
planted and why the row exists. This module applies the pretraining-corpus
rules to that ground truth, one subject at a time (every rule is per subject
or per row), so the expected statistics of a correct corpus build are exact:

  1. drop MIMIC-III rows with ISERROR=1 and binary-junk notes;
  2. remove re-saves: group by (CHARTTIME, SUBJECT_ID, CATEGORY, CGID); keep a
     group whole when it has one row, an empty CHARTTIME, or any empty CGID or
     STORETIME; otherwise keep only the row with the latest STORETIME;
  3. overlap rule: MIMIC-III patients outside the CareVue list keep only
     categories other than 'Radiology' and 'Discharge summary';
  4. remove every row of a downstream-task patient (CLIP, RadQA, n2c2 lists).

The generator keeps the drop reasons disjoint, so the counts do not depend on
the order of the steps: ISERROR, junk and re-save rows only occur in
categories that the overlap rule keeps and never belong to task patients, and
every task patient is a CareVue patient.

  rows = [Row(charttime="2151-01-02 10:00:00", cgid="17001", storetime="... 10:05:00", ...),
          Row(charttime="2151-01-02 10:00:00", cgid="17001", storetime="... 10:40:00", ...)]
  dedup_subject(rows) -> ([False, True], {"resave_groups": 1, ...})
"""

import collections
import dataclasses
import re
from typing import Optional

from clinical_t5.synth import phi

OVERLAP_CATEGORIES = frozenset({"Radiology", "Discharge summary"})

# Control characters that count towards the binary-junk rule: Unicode category
# Cc (C0 controls, DEL and the C1 controls U+0080-U+009F) other than tab, line
# feed and carriage return, as the corpus builder counts them (the generator
# never writes NUL, DEL or vertical tab / form feed into ordinary notes).
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def is_binary_junk(text: str) -> bool:
  """Apply the binary-junk rule: `{\\rtf` in the text, or over 5% control characters."""
  if "{\\rtf" in text:
    return True
  if not text:
    return False
  return len(_CONTROL_RE.findall(text)) > 0.05 * len(text)


@dataclasses.dataclass
class Row:
  """One MIMIC-III NOTEEVENTS row and what the generator planted in it."""
  subject_id: int
  hadm_id: str
  chartdate: str
  charttime: str
  storetime: str
  category: str
  description: str
  cgid: str
  iserror: str
  text: str
  forms: collections.Counter
  row_id: int = 0
  kind: str = "note"          # note | resave | iserror | junk_rtf | junk_control
  task: Optional[str] = None  # clip | radqa when the row is a task document


def dedup_subject(rows: list[Row]) -> tuple[list[bool], collections.Counter]:
  """Return which rows survive re-save removal and the group tallies.

  Rows with ISERROR=1 and junk notes are dropped before grouping. Tallies:
  `resave_groups`, `resave_rows_dropped` and `kept_whole_<reason>` for groups of
  two or more rows kept whole (reason: charttime_empty, cgid_empty,
  storetime_empty, first that applies).
  """
  keep = [r.iserror != "1" and r.kind not in ("junk_rtf", "junk_control") for r in rows]
  groups: dict[tuple, list[int]] = collections.defaultdict(list)
  for i, r in enumerate(rows):
    if keep[i]:
      groups[(r.charttime or "NaN", r.subject_id, r.category, r.cgid or "NaN")].append(i)
  tally: collections.Counter = collections.Counter()
  for members in groups.values():
    if len(members) == 1:
      continue
    if not rows[members[0]].charttime:
      tally["kept_whole_charttime_empty"] += 1
      continue
    if any(not rows[i].cgid for i in members):
      tally["kept_whole_cgid_empty"] += 1
      continue
    if any(not rows[i].storetime for i in members):
      tally["kept_whole_storetime_empty"] += 1
      continue
    # NOTE: the timestamps are all `YYYY-MM-DD HH:MM:SS`, so string order is time order.
    times = sorted(rows[i].storetime for i in members)
    if times[-1] == times[-2]:
      raise AssertionError("planted re-save group has a tie in its latest STORETIME")
    latest = max(members, key=lambda i: rows[i].storetime)
    for i in members:
      if i != latest:
        keep[i] = False
    tally["resave_groups"] += 1
    tally["resave_rows_dropped"] += len(members) - 1
  return keep, tally


class ExpectedCorpus:
  """Accumulates the statistics that a correct FULL corpus build must report."""

  def __init__(self):
    self.input_rows = collections.Counter()
    self.dropped = collections.Counter()
    self.removed_subjects: set[int] = set()
    self.forms_kept: collections.Counter = collections.Counter()
    self.mimic4_runs_kept = 0
    self.output_notes = collections.Counter()

  def add_mimic3_subject(self, rows: list[Row], carevue: bool, removed: bool) -> collections.Counter:
    """Apply every rule to one MIMIC-III subject's rows; return the dedup tallies."""
    self.input_rows["mimic3"] += len(rows)
    keep, tally = dedup_subject(rows)
    for r, kept in zip(rows, keep):
      if r.iserror == "1":
        self.dropped["iserror"] += 1
      elif r.kind in ("junk_rtf", "junk_control"):
        self.dropped["binary_junk"] += 1
      elif not kept:
        self.dropped["resave"] += 1
      elif not carevue and r.category in OVERLAP_CATEGORIES:
        self.dropped["overlap"] += 1
      elif removed:
        self.dropped["removed_subject"] += 1
      else:
        self.output_notes["mimic3"] += 1
        self.forms_kept.update(r.forms)
    if removed:
      self.removed_subjects.add(rows[0].subject_id)
    return tally

  def add_mimic4_note(self, source: str, subject_id: int, runs: int, removed: bool) -> None:
    """Apply the rules to one MIMIC-IV note with `runs` `___` placeholders."""
    self.input_rows[source] += 1
    if removed:
      self.dropped["removed_subject"] += 1
      self.removed_subjects.add(subject_id)
      return
    self.output_notes[source] += 1
    self.mimic4_runs_kept += runs

  def to_dict(self, deid_tags: tuple[str, ...]) -> dict:
    """Return the `expected_corpus` section of the report."""
    outcomes = phi.expected_outcomes(self.forms_kept)
    tags = {tag: 0 for tag in deid_tags}
    for outcome, count in outcomes.items():
      if outcome in tags:
        tags[outcome] += count
    tags["[MISC]"] += outcomes[phi.UNKNOWN] + self.mimic4_runs_kept
    sources = ("mimic3", "mimic4_discharge", "mimic4_radiology", "own")
    return {
        "input_rows": {s: self.input_rows[s] for s in sources},
        "dropped": {k: self.dropped[k] for k in
                    ("iserror", "binary_junk", "resave", "overlap", "removed_subject")},
        "removed_subjects": len(self.removed_subjects),
        "tags": tags,
        "placeholders": {"mimic3": sum(self.forms_kept.values()),
                         "mimic4": self.mimic4_runs_kept,
                         "kept_as_text": outcomes[phi.KEPT],
                         "empty": outcomes[phi.EMPTY],
                         "unknown": outcomes[phi.UNKNOWN]},
        "output_notes": {s: self.output_notes[s] for s in sources},
    }
