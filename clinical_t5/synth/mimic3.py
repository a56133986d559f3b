"""Synthetic MIMIC-III NOTEEVENTS, ICUSTAYS and the CareVue subset, one subject at a time.

Each subject gets a timeline of note events. Most events are one note; some
are planted quirks: an edited re-save group (same CHARTTIME, SUBJECT_ID,
CATEGORY and CGID, later STORETIME, a few words changed), a group kept whole
because of an empty CHARTTIME, CGID or STORETIME, an ISERROR=1 row, or a
binary-junk note. Rows are written as soon as a subject is complete, so memory
stays flat at any scale, and `rules.ExpectedCorpus` applies the corpus rules
to the same subject before it is forgotten.

  NOTEEVENTS.csv:
  "ROW_ID","SUBJECT_ID","HADM_ID","CHARTDATE","CHARTTIME","STORETIME","CATEGORY",...
  17,93,151223,2151-03-02,2151-03-02 14:05:00,2151-03-02 14:20:00,"Nursing/other","Report",17001,,"Neuro: A&Ox3 ..."
"""

import collections
import dataclasses
import datetime
import random
import re
from typing import Callable, Optional

from clinical_t5.synth import csvio
from clinical_t5.synth import phi
from clinical_t5.synth import rules
from clinical_t5.synth import text as text_lib

NOTEEVENTS_COLUMNS = ("ROW_ID", "SUBJECT_ID", "HADM_ID", "CHARTDATE", "CHARTTIME", "STORETIME",
                      "CATEGORY", "DESCRIPTION", "CGID", "ISERROR", "TEXT")
ICUSTAYS_COLUMNS = ("ROW_ID", "SUBJECT_ID", "HADM_ID", "ICUSTAY_ID", "DBSOURCE", "FIRST_CAREUNIT",
                    "LAST_CAREUNIT", "FIRST_WARDID", "LAST_WARDID", "INTIME", "OUTTIME", "LOS")

# The 15 MIMIC-III categories with rough real frequencies (per 1,000 notes).
# Three of them end with a space, as in the real table.
CATEGORY_WEIGHTS: dict[str, float] = {
    "Nursing/other": 380, "Radiology": 240, "Nursing": 100, "ECG": 90, "Physician ": 70,
    "Discharge summary": 30, "Echo": 20, "Respiratory ": 15, "Nutrition": 5, "General": 4,
    "Rehab Services": 3, "Social Work": 1.5, "Case Management ": 0.7, "Pharmacy": 0.2,
    "Consult": 0.2,
}
_CATEGORIES = list(CATEGORY_WEIGHTS)
_CUM_WEIGHTS = list(__import__("itertools").accumulate(CATEGORY_WEIGHTS.values()))

# Flags (CHARTTIME, STORETIME, CGID filled in) per category, as in real notes.
# Discharge summaries and ECGs carry only a CHARTDATE, and radiology has no caregiver.
_HAS_FIELDS: dict[str, tuple[bool, bool, bool]] = {
    "Discharge summary": (False, False, False), "ECG": (False, False, False),
    "Echo": (True, False, False), "Radiology": (True, False, False),
}
_FULL_FIELDS = (True, True, True)
_DESCRIPTIONS = {"Discharge summary": "Report", "ECG": "Report", "Echo": "Report",
                 "Nursing/other": "Report", "Radiology": "CHEST (PORTABLE AP)",
                 "Physician ": "Physician Resident Progress Note", "Nursing": "Nursing Progress Note",
                 "Respiratory ": "Respiratory Care Shift Note"}
# Categories whose notes may carry drop quirks: every field is filled and the
# overlap rule keeps them.
_QUIRK_CATEGORIES = ("Nursing/other", "Physician ", "Nursing", "Respiratory ")

_EDITS = [("stable", "unchanged"), ("monitor", "closely monitor"), ("clear", "clear and equal"),
          ("family", "family at bedside"), ("pain", "incisional pain"), ("cont", "continue"),
          ("bilat", "bilaterally"), ("AM", "the morning"), ("NPO", "NPO after midnight"),
          ("Plan", "Plan of care"), ("normal", "within normal limits")]
_PLACEHOLDER_SPLIT = re.compile(r"(\[\*\*.*?\*\*\])")

_RTF_JUNK = ("{\\rtf1\\ansi\\ansicpg1252\\deff0\\deflang1033{\\fonttbl{\\f0\\fswiss\\fcharset0 Arial;}}\n"
             "\\viewkind4\\uc1\\pard\\f0\\fs20 Nursing progress note\\par\n\\par\n}\n")
# C0 control characters without tab, line feed, vertical tab, form feed and carriage return.
_CONTROL_CHARS = [chr(c) for c in range(1, 9)] + [chr(c) for c in range(14, 32)]


def edit_text(text: str, rng: random.Random) -> str:
  """Return `text` with a few words changed, never inside a placeholder."""
  pieces = _PLACEHOLDER_SPLIT.split(text)
  order = list(range(len(_EDITS)))
  rng.shuffle(order)
  for k in order:
    old, new = _EDITS[k]
    for i in range(0, len(pieces), 2):  # even pieces are outside placeholders
      if re.search(rf"\b{old}\b", pieces[i]):
        pieces[i] = re.sub(rf"\b{old}\b", new, pieces[i], count=1)
        return _append("".join(pieces), "Pt resting comfortably.\n")
  return _append(text, "Addendum: pt resting comfortably, will cont to monitor.\n")


def _append(text: str, line: str) -> str:
  return text + line if text.endswith("\n") else text + "\n" + line


def junk_text(kind: str, rng: random.Random) -> str:
  """Return a binary-junk note: an RTF remnant or text with ~30% control characters."""
  if kind == "junk_rtf":
    return _RTF_JUNK
  chars = []
  for _ in range(400):
    chars.append(rng.choice(_CONTROL_CHARS) if rng.random() < 0.3 else rng.choice("abcdefgh "))
  return "".join(chars)


@dataclasses.dataclass
class SubjectPlan:
  """The role, DBSOURCE and events of one subject to generate."""
  subject_id: int
  carevue: bool
  dbsource: str                 # carevue | metavision | both | "" (no ICU stay)
  events: int
  role: Optional[str] = None    # clip | radqa | clip+radqa | n2c2 | None
  forced: tuple[str, ...] = ()  # quirk events that must occur


class SubjectBuilder:
  """Builds the NOTEEVENTS rows of one subject on a timeline of unique CHARTTIMEs."""

  def __init__(self, rng: random.Random, plan: SubjectPlan):
    self.rng = rng
    self.plan = plan
    self.year = rng.randint(2100, 2190)
    self.clock = datetime.datetime(self.year, rng.randint(1, 12), rng.randint(1, 28),
                                   rng.randint(0, 23), rng.choice((0, 15, 30, 45)))
    self.admissions = [str(rng.randint(100000, 199999)) for _ in range(rng.randint(1, 3))]
    self.rows: list[rules.Row] = []

  def filler(self) -> phi.Filler:
    return phi.Filler(self.rng, "mimic3", self.year, text_lib.VOCAB)

  def _tick(self) -> datetime.datetime:
    # NOTE: every event moves the clock by at least 37 minutes, so two events
    # never share a CHARTTIME and no re-save group forms by accident.
    self.clock += datetime.timedelta(minutes=self.rng.randint(37, 900))
    return self.clock

  def _row(self, category: str, text: str, forms: collections.Counter, when: datetime.datetime,
           *, fields: tuple[bool, bool, bool], cgid: str, store_delay: int, kind: str = "note",
           iserror: str = "", task: Optional[str] = None) -> rules.Row:
    has_charttime, has_storetime, has_cgid = fields
    hadm = self.rng.choice(self.admissions)
    if category in ("ECG", "Radiology") and self.rng.random() < 0.1:
      hadm = ""  # outpatient tests have no admission
    store = when + datetime.timedelta(minutes=store_delay)
    row = rules.Row(subject_id=self.plan.subject_id, hadm_id=hadm,
                    chartdate=when.date().isoformat(),
                    charttime=when.isoformat(" ") if has_charttime else "",
                    storetime=store.isoformat(" ") if has_storetime else "",
                    category=category, description=_DESCRIPTIONS.get(category, "Report"),
                    cgid=cgid if has_cgid else "", iserror=iserror, text=text, forms=forms,
                    kind=kind, task=task)
    self.rows.append(row)
    return row

  def _cgid(self) -> str:
    return str(self.rng.randint(14000, 21500))

  def note(self, category: str, *, long: bool = False, crlf: bool = False,
           quoted: bool = False, odd: bool = False) -> rules.Row:
    """Add one ordinary note with the category's usual fields."""
    filler = self.filler()
    text = text_lib.mimic3_note(category, filler, self.rng, long=long)
    if quoted:
      text += 'Pt states "I want to go home, now."\n'
    if odd:
      text += "Called {ODD} re: plan of care, {ODD} to follow.\n".format_map(filler)
    if crlf:
      text = text.replace("\n", "\r\n")
    return self._row(category, text, filler.forms, self._tick(),
                     fields=_HAS_FIELDS.get(category, _FULL_FIELDS), cgid=self._cgid(),
                     store_delay=self.rng.randint(5, 120))

  def all_forms_note(self) -> rules.Row:
    """Add a note that plants every placeholder form once, two per line."""
    filler = self.filler()
    forms = list(phi.FORMS)
    lines = ["Contacts and records reviewed with the team:"]
    for i in range(0, len(forms), 2):
      pair = forms[i:i + 2]
      lines.append(" and ".join("{FORM-%s}" % form for form in pair) + " reviewed.")
    text = "\n".join(lines).format_map(filler) + "\n"
    return self._row("General", text, filler.forms, self._tick(), fields=_FULL_FIELDS,
                     cgid=self._cgid(), store_delay=30)

  def task_note(self, category: str, make: Callable, task: str) -> tuple[rules.Row, object]:
    """Add a task document (CLIP discharge summary, RadQA report) made by `make`."""
    filler = self.filler()
    text, payload = make(filler, self.rng)
    row = self._row(category, text, filler.forms, self._tick(),
                    fields=_HAS_FIELDS.get(category, _FULL_FIELDS), cgid=self._cgid(),
                    store_delay=self.rng.randint(5, 120), task=task)
    return row, payload

  def resave(self, size: int, exact: bool = False) -> None:
    """Add a re-save group of `size` rows: same key, later STORETIMEs, small edits."""
    category = self.rng.choice(_QUIRK_CATEGORIES)
    filler = self.filler()
    text = text_lib.mimic3_note(category, filler, self.rng)
    when, cgid = self._tick(), self._cgid()
    delay = self.rng.randint(5, 60)
    for _ in range(size):
      self._row(category, text, filler.forms, when, fields=_FULL_FIELDS, cgid=cgid,
                store_delay=delay, kind="resave")
      delay += self.rng.randint(3, 240)
      if not exact:
        text = edit_text(text, self.rng)

  def kept_whole(self, reason: str) -> None:
    """Add a two-row group that the re-save rule keeps whole because of `reason`."""
    category = self.rng.choice(_QUIRK_CATEGORIES)
    when, cgid = self._tick(), self._cgid()
    for i in range(2):
      filler = self.filler()
      text = text_lib.mimic3_note(category, filler, self.rng)
      fields = {"charttime_empty": (False, True, True), "cgid_empty": (True, True, False),
                "storetime_empty": (True, i == 0, True)}[reason]
      self._row(category, text, filler.forms, when, fields=fields, cgid=cgid,
                store_delay=10 + 30 * i, kind="kept_" + reason)

  def single_quirk(self, kind: str) -> None:
    """Add one ISERROR=1 row or one binary-junk note (never part of a group)."""
    category = self.rng.choice(_QUIRK_CATEGORIES)
    if kind == "iserror":
      filler = self.filler()
      text = text_lib.mimic3_note(category, filler, self.rng)
      self._row(category, text, filler.forms, self._tick(), fields=_FULL_FIELDS,
                cgid=self._cgid(), store_delay=15, kind="iserror", iserror="1")
    else:
      self._row(category, junk_text(kind, self.rng), collections.Counter(), self._tick(),
                fields=_FULL_FIELDS, cgid=self._cgid(), store_delay=15, kind=kind)


def random_event(builder: SubjectBuilder, rng: random.Random, quirks: bool) -> None:
  """Add one event drawn from the background distribution."""
  r = rng.random()
  if quirks and r < 0.05:
    builder.resave(2 if rng.random() < 0.7 else 3, exact=rng.random() < 0.2)
    return
  if quirks and r < 0.054:
    builder.single_quirk("iserror")
    return
  if quirks and r < 0.0545:
    builder.single_quirk("junk_rtf" if rng.random() < 0.5 else "junk_control")
    return
  if quirks and r < 0.062:
    builder.kept_whole(rng.choice(("charttime_empty", "cgid_empty", "storetime_empty")))
    return
  category = rng.choices(_CATEGORIES, cum_weights=_CUM_WEIGHTS)[0]
  builder.note(category, long=category == "Discharge summary" and rng.random() < 0.15,
               crlf=rng.random() < 0.02, quoted=rng.random() < 0.03, odd=rng.random() < 0.01)


def forced_event(builder: SubjectBuilder, event: str) -> None:
  """Add one named quirk event (used so that every quirk occurs at any scale)."""
  if event.startswith("resave"):
    builder.resave(int(event[len("resave")]), exact=event.endswith("_exact"))
  elif event.startswith("kept_"):
    builder.kept_whole(event[len("kept_"):])
  elif event in ("iserror", "junk_rtf", "junk_control"):
    builder.single_quirk(event)
  elif event == "long":
    builder.note("Discharge summary", long=True)
  elif event == "crlf":
    builder.note("Nursing/other", crlf=True, quoted=True)
  elif event == "odd":
    builder.note("Nursing/other", odd=True)
  elif event == "all_forms":
    builder.all_forms_note()
  elif event.startswith("category:"):
    builder.note(event[len("category:"):])
  else:
    raise ValueError(f"unknown forced event {event!r}")


def format_row(row: rules.Row) -> str:
  """Format one NOTEEVENTS row (string columns quoted, numbers and empties bare)."""
  return (f"{row.row_id},{row.subject_id},{row.hadm_id},{row.chartdate},{row.charttime},"
          f"{row.storetime},{csvio.quote(row.category)},{csvio.quote(row.description)},"
          f"{row.cgid},{row.iserror},{csvio.quote(row.text)}\n")


def noteevents_header() -> str:
  return ",".join(csvio.quote(c) for c in NOTEEVENTS_COLUMNS) + "\n"


def icustays_lines(builder: SubjectBuilder, next_row_id: int) -> list[str]:
  """Return the ICUSTAYS rows of a subject (none when its DBSOURCE is empty)."""
  plan, rng = builder.plan, builder.rng
  if not plan.dbsource:
    return []
  lines = []
  for k, hadm in enumerate(builder.admissions):
    intime = datetime.datetime(builder.year, 1, 1) + datetime.timedelta(hours=rng.randint(0, 8000))
    los_hours = rng.randint(12, 400)
    outtime = intime + datetime.timedelta(hours=los_hours)
    unit = rng.choice(text_lib.VOCAB["unit"])
    ward = rng.choice((7, 14, 15, 23, 33, 52, 57))
    lines.append(f"{next_row_id + k},{plan.subject_id},{hadm},{rng.randint(200000, 299999)},"
                 f"{csvio.quote(plan.dbsource)},{csvio.quote(unit)},{csvio.quote(unit)},{ward},{ward},"
                 f"{intime:%Y-%m-%d %H:%M:%S},{outtime:%Y-%m-%d %H:%M:%S},{los_hours / 24:.4f}\n")
  return lines


def icustays_header() -> str:
  return ",".join(csvio.quote(c) for c in ICUSTAYS_COLUMNS) + "\n"
