"""The streaming passes that write the MIMIC-III and MIMIC-IV note tables.

Both passes generate one subject, write its rows to every file that takes
them (the .csv and the .csv.gz of NOTEEVENTS, the CareVue subset, ICUSTAYS),
count what was planted, apply the corpus rules to the subject, and move on.
Only task documents (about 110) and subject ids stay in memory.

  planted, expected = Planted(), rules.ExpectedCorpus()
  tasks = write_mimic3(out, random.Random("mimic3:0"), 1.0, planted, expected)
  tasks.clip_docs[0]  -> (ROW_ID of a Discharge summary, its CLIP sentences)
"""

import collections
import dataclasses
import math
import os
import random

from absl import logging

from clinical_t5.progress import progress
from clinical_t5.synth import csvio
from clinical_t5.synth import mimic3
from clinical_t5.synth import mimic4
from clinical_t5.synth import phi
from clinical_t5.synth import rules
from clinical_t5.synth import tasks_data

# NOTE: task sizes follow the contract's defaults and do not scale with the notes.
CLIP_DOCS = 60
RADQA_REPORTS = 50
N2C2_MIMIC3_SUBJECTS = 10
N2C2_MIMIC4_SUBJECTS = 2
MIMIC3_NOTES_PER_SCALE = 3000
MIMIC4_DISCHARGE_PER_SCALE = 600

# Quirk events that the first background subjects must contain, so that every
# quirk occurs at any scale; the DBSOURCE of those subjects is fixed too.
_FORCED = (
    ("carevue", ("resave2", "iserror", "junk_rtf", "kept_charttime_empty", "odd", "all_forms",
                 "category:Pharmacy", "category:Consult", "long", "crlf")),
    ("metavision", ("resave3", "resave2_exact", "junk_control", "kept_cgid_empty", "long", "crlf",
                    "odd", "category:Case Management ", "category:Social Work",
                    "category:Radiology", "category:Discharge summary")),
    ("both", ("resave2", "iserror", "kept_storetime_empty", "category:General",
              "category:Rehab Services", "category:Nutrition", "category:Echo")),
)


class Planted:
  """Counts of planted quirks over all input rows (the report's `planted` section)."""

  def __init__(self):
    self.counts = collections.Counter()
    self.forms = collections.Counter()
    self.categories = collections.Counter()
    self.dbsource = collections.Counter()
    self.kept_whole = collections.Counter()
    self.files: dict[str, int] = {}

  def add_mimic3_row(self, row: rules.Row) -> None:
    text, c = row.text, self.counts
    self.categories[row.category] += 1
    self.forms.update(row.forms)
    c["iserror_rows"] += row.iserror == "1"
    c["junk_rtf"] += row.kind == "junk_rtf"
    c["junk_control"] += row.kind == "junk_control"
    c["crlf_fields"] += "\r\n" in text
    c["doubled_quote_fields"] += '"' in text
    c["notes_over_10kb"] += len(text) > 2500 and len(text.encode("utf-8")) > 10240
    c["non_ascii_notes"] += not text.isascii()
    c["notes_with_braces"] += "{" in text or "}" in text
    c["notes_with_tabs"] += "\t" in text
    c["notes_with_tilde"] += "~" in text
    c["empty_charttime_rows"] += not row.charttime
    c["empty_cgid_rows"] += not row.cgid
    c["empty_storetime_rows"] += not row.storetime
    if text.count("[**") >= 2:
      c["lines_with_two_placeholders"] += sum(1 for line in text.split("\n") if line.count("[**") >= 2)

  def add_mimic4_note(self, note: dict) -> None:
    runs = mimic4.UNDERSCORE_RUN.findall(note["text"])
    if len(runs) != note["runs"]:
      raise AssertionError(f"note {note['note_id']}: {len(runs)} runs but {note['runs']} entities")
    c = self.counts
    c["mimic4_underscore_runs"] += len(runs)
    c["mimic4_long_runs"] += sum(1 for r in runs if len(r) >= 4)
    c["mimic4_notes_over_10kb"] += len(note["text"].encode("utf-8")) > 10240
    c["mimic4_empty_storetime"] += not note["storetime"]
    c["mimic4_empty_hadm_radiology"] += note["table"] == "radiology" and not note["hadm_id"]

  def to_dict(self) -> dict:
    c = self.counts
    scalar_keys = ("iserror_rows", "resave_groups", "resave_rows_dropped", "crlf_fields",
                   "doubled_quote_fields", "notes_over_10kb", "non_ascii_notes",
                   "notes_with_braces", "notes_with_tabs", "notes_with_tilde",
                   "lines_with_two_placeholders", "empty_charttime_rows", "empty_cgid_rows",
                   "empty_storetime_rows", "mimic4_underscore_runs", "mimic4_long_runs",
                   "mimic4_notes_over_10kb", "mimic4_empty_storetime",
                   "mimic4_empty_hadm_radiology", "subjects_mimic3", "carevue_subjects",
                   "subjects_mimic4", "task_subjects_with_notes")
    out = {k: c[k] for k in scalar_keys}
    out["kept_whole_groups"] = {k: self.kept_whole[k] for k in
                                ("charttime_empty", "cgid_empty", "storetime_empty")}
    out["binary_junk_notes"] = c["junk_rtf"] + c["junk_control"]
    out["binary_junk_kinds"] = {"rtf": c["junk_rtf"], "control": c["junk_control"]}
    out["placeholders_mimic3"] = phi.form_kind_counts(self.forms)
    out["placeholder_forms_mimic3"] = {f: self.forms[f] for f in phi.FORMS}
    out["categories"] = {k: self.categories[k] for k in mimic3.CATEGORY_WEIGHTS}
    out["dbsource"] = {k: self.dbsource[k] for k in ("carevue", "metavision", "both", "none")}
    return out


@dataclasses.dataclass
class TaskDocs:
  """Task documents and subject lists collected during the MIMIC-III pass."""
  clip_docs: list = dataclasses.field(default_factory=list)    # (row_id, sentences)
  radqa_docs: list = dataclasses.field(default_factory=list)   # (row_id, payload)
  n2c2_subjects: list = dataclasses.field(default_factory=list)
  carevue_subjects: list = dataclasses.field(default_factory=list)


def _task_roles(rng: random.Random) -> list[str]:
  roles = (["clip"] * (CLIP_DOCS - 1) + ["clip+radqa"] + ["radqa"] * (RADQA_REPORTS - 1)
           + ["n2c2"] * N2C2_MIMIC3_SUBJECTS)
  rng.shuffle(roles)
  return roles


def _plan_subject(rng: random.Random, sid: int, roles: list[str], mean_events: int,
                  forced_done: int, task_turn: bool) -> mimic3.SubjectPlan:
  """Decide the role, DBSOURCE and event count of the next subject."""
  if roles and task_turn:
    # Task patients are CareVue patients, so the overlap rule never touches them.
    return mimic3.SubjectPlan(sid, True, "carevue", rng.randint(2, 8), role=roles.pop())
  if forced_done < len(_FORCED):
    dbsource, events = _FORCED[forced_done]
    return mimic3.SubjectPlan(sid, dbsource == "carevue", dbsource, rng.randint(3, 10),
                              forced=events)
  r = rng.random()
  # NOTE: about 45% of MIMIC-III patients are CareVue-era; a few have no ICU stay.
  if r < 0.45:
    dbsource = "carevue"
  elif r < 0.9:
    dbsource = "metavision"
  elif r < 0.97:
    dbsource = "both"
  else:
    dbsource = ""
  return mimic3.SubjectPlan(sid, dbsource == "carevue", dbsource,
                            rng.randint(1, 2 * mean_events - 1))


def _build_subject(rng: random.Random, plan: mimic3.SubjectPlan) -> tuple:
  builder = mimic3.SubjectBuilder(rng, plan)
  docs = []
  for event in plan.forced:
    mimic3.forced_event(builder, event)
  for _ in range(plan.events):
    mimic3.random_event(builder, rng, quirks=plan.role is None)
  if plan.role and "clip" in plan.role:
    docs.append(("clip",) + builder.task_note("Discharge summary", tasks_data.make_clip_doc, "clip"))
  if plan.role and "radqa" in plan.role:
    docs.append(("radqa",) + builder.task_note("Radiology", tasks_data.make_radqa_doc, "radqa"))
  rng.shuffle(builder.rows)
  return builder, docs


def write_mimic3(out: str, rng: random.Random, scale: float, planted: Planted,
                 expected: rules.ExpectedCorpus) -> TaskDocs:
  """Write NOTEEVENTS (.csv, .csv.gz, CareVue subset) and ICUSTAYS; return the task documents."""
  target = max(1, round(MIMIC3_NOTES_PER_SCALE * scale))
  # NOTE: 30 events per subject on average, more when needed to keep every
  # MIMIC-III subject id below 100,000 as in the real table.
  mean_events = max(30, math.ceil(target / 80000))
  expected_subjects = 1.2 * target / mean_events + 150
  max_gap = max(1, min(40, int(2 * 95000 / expected_subjects) - 1))

  header = mimic3.noteevents_header()
  notes = csvio.Table([csvio.ByteSink(f"{out}/mimic-iii/NOTEEVENTS.csv"),
                       csvio.ByteSink(f"{out}/mimic-iii/NOTEEVENTS.csv.gz", gz=True)], header)
  carevue_notes = csvio.Table([csvio.ByteSink(f"{out}/mimic-iii-carevue/NOTEEVENTS.csv")], header)
  icustays = csvio.Table([csvio.ByteSink(f"{out}/mimic-iii/ICUSTAYS.csv")], mimic3.icustays_header())

  tasks, roles = TaskDocs(), _task_roles(rng)
  # Task subjects are spread evenly over the background subjects.
  # NOTE: a task subject has about 6 notes, a background subject `mean_events`.
  n_roles = len(roles)
  background = max(1.0, (target - 6 * n_roles) / mean_events)
  task_share = n_roles / (n_roles + background)
  sid, index, forced_done, row_id = rng.randint(2, 40), 0, 0, 1
  bar = progress(total=target, desc="MIMIC-III notes", unit="note")
  while notes.rows < target or roles or forced_done < len(_FORCED):
    task_turn = (n_roles - len(roles)) < task_share * (index + 1)
    plan = _plan_subject(rng, sid, roles, mean_events, forced_done, task_turn)
    forced_done += bool(plan.forced)
    builder, docs = _build_subject(rng, plan)
    rows = builder.rows
    for row in rows:
      row.row_id = row_id
      row_id += 1
      planted.add_mimic3_row(row)
    lines = [mimic3.format_row(row) for row in rows]
    notes.write_lines(lines)
    if plan.carevue:
      carevue_notes.write_lines(lines)
      tasks.carevue_subjects.append(sid)
      planted.counts["carevue_rows"] += len(lines)
    icustays.write_lines(mimic3.icustays_lines(builder, icustays.rows + 1))

    for kind, row, payload in docs:
      (tasks.clip_docs if kind == "clip" else tasks.radqa_docs).append((row.row_id, payload))
    if plan.role == "n2c2":
      tasks.n2c2_subjects.append(sid)
    planted.counts["task_subjects_with_notes"] += plan.role is not None
    planted.counts["subjects_mimic3"] += 1
    planted.counts["carevue_subjects"] += plan.carevue
    planted.dbsource[plan.dbsource or "none"] += 1
    tally = expected.add_mimic3_subject(rows, plan.carevue, removed=plan.role is not None)
    _add_tally(planted, tally)

    bar.update(len(rows))
    index += 1
    sid += rng.randint(1, max_gap)
    if sid >= 100000:
      raise AssertionError("MIMIC-III subject ids ran past 99,999")
  bar.close()
  for table in (notes, carevue_notes, icustays):
    table.close()
  logging.info("wrote %d MIMIC-III notes of %d subjects", notes.rows, index)
  return tasks


def _add_tally(planted: Planted, tally: collections.Counter) -> None:
  planted.counts["resave_groups"] += tally["resave_groups"]
  planted.counts["resave_rows_dropped"] += tally["resave_rows_dropped"]
  for reason in ("charttime_empty", "cgid_empty", "storetime_empty"):
    planted.kept_whole[reason] += tally["kept_whole_" + reason]


def write_mimic4(out: str, rng: random.Random, scale: float, planted: Planted,
                 expected: rules.ExpectedCorpus) -> list[int]:
  """Write the MIMIC-IV-Note tables; return the subject ids put on the n2c2 list."""
  target = max(1, round(MIMIC4_DISCHARGE_PER_SCALE * scale))
  writer = mimic4.Mimic4Writer(out)
  sid = mimic4.FIRST_SUBJECT_ID + rng.randint(0, 999)
  n2c2, index = [], 0
  bar = progress(total=target, desc="MIMIC-IV discharge notes", unit="note")
  while writer.notes["discharge"].rows < target or len(n2c2) < N2C2_MIMIC4_SUBJECTS:
    removed = index % 2 == 1 and len(n2c2) < N2C2_MIMIC4_SUBJECTS
    notes = mimic4.subject_notes(rng, sid, force_long=index in (0, 4))
    for table in ("discharge", "radiology"):
      mine = [n for n in notes if n["table"] == table]
      writer.notes[table].write_lines([mimic4.format_note(n) for n in mine])
      writer.annotations[table].write_lines([line for n in mine for line in mimic4.annotation_lines(n)])
    for note in notes:
      planted.counts[f"mimic4_{note['table']}_rows"] += 1
      planted.counts[f"mimic4_{note['table']}_runs"] += note["runs"]
      planted.add_mimic4_note(note)
      expected.add_mimic4_note("mimic4_" + note["table"], sid, note["runs"], removed)
    if removed:
      n2c2.append(sid)
      planted.counts["task_subjects_with_notes"] += 1
    planted.counts["subjects_mimic4"] += 1
    bar.update(sum(n["table"] == "discharge" for n in notes))
    index += 1
    sid += rng.randint(1, 400)
  bar.close()
  writer.close()
  logging.info("wrote %d MIMIC-IV discharge and %d radiology notes",
               writer.notes["discharge"].rows, writer.notes["radiology"].rows)
  return n2c2
