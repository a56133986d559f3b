"""De-identification placeholders that synthetic notes carry, with their ground truth.

MIMIC-III replaces PHI by typed placeholders `[**Category qualifier 123**]` and
writes shifted dates in place (`[**2101-5-25**]`). MIMIC-IV writes `___` with no
type. Every placeholder form the generator can plant is listed in `FORMS`
together with what the Clinical-T5 tagging rules turn it into, so the expected
corpus statistics follow from what was planted, not from re-running a tagger.

  filler = Filler(random.Random(0), "mimic3", year=2151)
  "Seen by Dr. {NAME} on {DATE}.".format_map(filler)
  -> "Seen by Dr. [**Last Name (STitle) 4112**] on [**2151-3-14**]."
  filler.forms -> Counter({"last_name_stitle": 1, "date_full": 1})

The outcome of each form follows the tagging rules, applied in order. The
first key of the tag map that occurs in the inner text decides the tag. Without
a key, the checks run in this order: a three-part date is kept as text, purely
numeric text becomes `[Reg#]`, and text that is numeric once '-' and '/' are
removed is kept as text. Then text with a month name is kept as text, and
whitespace-only text becomes empty. Anything
else is an unknown form, which the corpus builder writes as `[MISC]`.

Forms whose tag is ambiguous are never planted: `Wardname` contains `name` in
lower case, so its tag depends on whether the key search ignores case, and
`Hospital Unit Name` contains both `Name` and `Hospital`, so its tag depends on
the key order of the tag map.
"""

import collections
import collections.abc
import random
from typing import Optional


class FastRandom(random.Random):
  """`random.Random` with cheaper integer draws, for generating millions of notes.

  `randint`, `choice`, `shuffle` and `sample` draw through `random()` (one C
  call) instead of the rejection sampler of `_randbelow`, which dominated the
  generation time. The draws stay deterministic for a seed.
  """

  def _randbelow(self, n: int) -> int:
    # NOTE: int(random() * n) is biased by at most n / 2**53, below 1e-10 for n < 1e6.
    return int(self.random() * n)

  def randint(self, a: int, b: int) -> int:
    return a + int(self.random() * (b - a + 1))

  def choice(self, seq):
    return seq[int(self.random() * len(seq))]


# Outcomes other than a tag.
KEPT = "kept_as_text"
EMPTY = "empty"
UNKNOWN = "unknown"

# form id -> (report kind, inner-text template, outcome). `{n}` is a number,
# `{y}`, `{m}`, `{d}` a shifted year, month and day.
FORMS: dict[str, tuple[str, str, str]] = {
    # Names: every key of the [Name] group.
    "first_name_titles": ("typed_name", "First Name (Titles) {n}", "[Name]"),
    "first_name3_lf": ("typed_name", "First Name3 (LF) {n}", "[Name]"),
    "last_name_pattern1": ("typed_name", "Last Name (NamePattern1) {n}", "[Name]"),
    "last_name_stitle": ("typed_name", "Last Name (STitle) {n}", "[Name]"),
    "doctor_first_name": ("typed_name", "Doctor First Name {n}", "[Name]"),
    "doctor_last_name": ("typed_name", "Doctor Last Name (ambig) {n}", "[Name]"),
    "known_lastname": ("typed_name", "Known lastname {n}", "[Name]"),
    "known_firstname": ("typed_name", "Known firstname {n}", "[Name]"),
    "female_first_name": ("typed_name", "Female First Name (un) {n}", "[Name]"),
    "name_ni": ("typed_name", "Name (NI) {n}", "[Name]"),
    "name_initial": ("typed_name", "Name Initial (MD) {n}", "[Name]"),
    "initials": ("typed_name", "Initials (NamePattern4) {n}", "[Name]"),
    # Institutions.
    "hospital1": ("hospital", "Hospital1 {n}", "[Company]"),
    "hospital": ("hospital", "Hospital {n}", "[Company]"),
    "company": ("hospital", "Company {n}", "[Company]"),
    "college": ("hospital", "University/College {n}", "[Company]"),
    # Places.
    "location_un": ("location", "Location (un) {n}", "[LOC]"),
    "street_address": ("location", "Street Address(1) {n}", "[LOC]"),
    "apartment_address": ("location", "Apartment Address(1) {n}", "[LOC]"),
    "po_box": ("location", "PO Box {n}", "[LOC]"),
    "state": ("location", "State {n}", "[State]"),
    "country": ("location", "Country {n}", "[Country]"),
    # Identifiers.
    "clip_number": ("id", "Clip Number (Radiology) {n}", "[Reg#]"),
    "numeric_identifier": ("id", "Numeric Identifier {n}", "[Reg#]"),
    "medical_record_number": ("id", "Medical Record Number {n}", "[Reg#]"),
    "md_number": ("id", "MD Number(1) {n}", "[Reg#]"),
    "job_number": ("id", "Job Number {n}", "[Reg#]"),
    "unit_number": ("id", "Unit Number {n}", "[Reg#]"),
    "serial_number": ("id", "Serial Number {n}", "[#]"),
    "social_security_number": ("id", "Social Security Number {n}", "[#]"),
    "provider_number": ("id", "Provider Number {n}", "[#]"),
    # Contact information.
    "telephone": ("contact", "Telephone/Fax (1) {n}", "[#]"),
    "pager": ("contact", "Pager number {n}", "[#]"),
    "email": ("contact", "E-mail address {n}", "[CI]"),
    "cc_contact": ("contact", "CC Contact Info {n}", "[CI]"),
    "attending_info": ("contact", "Attending Info {n}", "[CI]"),
    "dictator_info": ("contact", "Dictator Info {n}", "[CI]"),
    "url": ("contact", "URL {n}", "[URL]"),
    # Age over 90, with the trailing space of the real form.
    "age_over_90": ("age", "Age over 90 ", "[Age]"),
    # Shifted dates written in place.
    "date_full": ("date_full", "{y}-{m}-{d}", KEPT),
    "date_year": ("date_year", "{y}", "[Reg#]"),       # numeric only -> [Reg#]
    "date_month_day": ("date_month_day", "{m}-{d}", KEPT),
    "date_month_name": ("date_month_name", "March {y}", KEPT),
    # Typed date parts; compound forms resolve to the first key in map order,
    # and the [YR] key comes before [MO], which comes before [DAY].
    "month_day_year": ("date_compound", "Month/Day/Year {n}", "[YR]"),
    "month_year": ("date_compound", "Month/Year (2) {n}", "[YR]"),
    "month_day": ("date_compound", "Month/Day (2) {n}", "[MO]"),
    "day_month": ("date_compound", "Day Month {n}", "[MO]"),
    "year_4_digits": ("date_compound", "Year (4 digits) {n}", "[YR]"),
    "month_only": ("date_compound", "Month (only) {n}", "[MO]"),
    "holiday": ("date_compound", "Holiday {n}", "[DAY]"),
    "date_range": ("date_compound", "Date range (1) {n}", "[DR]"),
    # Whitespace only, and forms that match no rule.
    "empty": ("empty", " ", EMPTY),
    "unknown_underscores": ("unknown", "___", UNKNOWN),
    "unknown_category": ("unknown", "Radiology Tech {n}", UNKNOWN),
}

# Slot name in a template -> [(form id, relative weight)].
_SLOT_FORMS: dict[str, list[tuple[str, int]]] = {
    "NAME": [("last_name_stitle", 30), ("first_name_titles", 10), ("first_name3_lf", 8),
             ("last_name_pattern1", 14), ("doctor_first_name", 8), ("doctor_last_name", 6),
             ("known_lastname", 8), ("known_firstname", 5), ("female_first_name", 3),
             ("name_ni", 4), ("name_initial", 2), ("initials", 2)],
    "HOSP": [("hospital1", 60), ("hospital", 20), ("company", 10), ("college", 4)],
    "LOC": [("location_un", 40), ("street_address", 20), ("apartment_address", 8),
            ("po_box", 4), ("state", 20), ("country", 8)],
    "ID": [("medical_record_number", 20), ("numeric_identifier", 25), ("md_number", 15),
           ("job_number", 20), ("unit_number", 10), ("serial_number", 5),
           ("social_security_number", 2), ("provider_number", 3)],
    "CLIP": [("clip_number", 1)],
    "JOB": [("job_number", 1)],
    "PHONE": [("telephone", 60), ("pager", 30), ("email", 3), ("cc_contact", 3),
              ("attending_info", 2), ("dictator_info", 2), ("url", 1)],
    "AGE90": [("age_over_90", 1)],
    "DATE": [("date_full", 60), ("date_month_day", 14), ("date_year", 8),
             ("date_month_name", 2), ("month_day_year", 4), ("month_year", 2),
             ("month_day", 3), ("day_month", 1), ("year_4_digits", 2),
             ("month_only", 2), ("holiday", 1), ("date_range", 1)],
    "FULLDATE": [("date_full", 1)],
    "DOB": [("date_full", 1)],
    "ODD": [("empty", 6), ("unknown_underscores", 2), ("unknown_category", 2)],
}
# One slot per form (`{FORM-date_year}`), for notes that must plant a given form.
_SLOT_FORMS.update({f"FORM-{form}": [(form, 1)] for form in FORMS})

# MIMIC-IV entity type of the annotation file for each slot.
_SLOT_ENTITY: dict[str, str] = {
    "NAME": "NAME", "HOSP": "ORGANIZATION", "LOC": "LOCATION", "ID": "ID", "CLIP": "ID",
    "JOB": "ID", "PHONE": "CONTACT", "AGE90": "AGE", "DATE": "DATE", "FULLDATE": "DATE", "DOB": "DATE",
    "ODD": "MISC",
}
_SLOT_ENTITY.update({f"FORM-{form}": "MISC" for form in FORMS})


def _cumulate(pairs: list[tuple[str, int]]) -> tuple[list[str], list[int]]:
  names = [name for name, _ in pairs]
  cum, total = [], 0
  for _, weight in pairs:
    total += weight
    cum.append(total)
  return names, cum


_SLOTS = {slot: _cumulate(pairs) for slot, pairs in _SLOT_FORMS.items()}
PHI_SLOTS = frozenset(_SLOTS)


def render_form(form: str, rng: random.Random, year: int) -> str:
  """Return the inner text of one placeholder of `form` (without `[**`/`**]`)."""
  template = FORMS[form][1]
  if "{" not in template:
    return template
  return template.format(n=rng.randint(1, 99999), y=year, m=rng.randint(1, 12),
                         d=rng.randint(1, 28))


def underscore_run(rng: random.Random) -> str:
  """Return a MIMIC-IV placeholder: mostly `___`, sometimes a longer run."""
  # NOTE: about 1 run in 12 has 4-6 underscores, so every data set of more than
  # a few notes contains `____` and `_____` runs.
  return "___" if rng.random() < 0.92 else "_" * rng.randint(4, 6)


class Filler(collections.abc.Mapping):
  """A `str.format_map` mapping that renders slots and records what it planted.

  Upper-case slot names (`NAME`, `DATE`, ...) become placeholders. Lower-case
  slot names draw a word or phrase from `vocab`. In "mimic3" mode, `forms`
  counts the placeholder forms. In "mimic4" mode, `entities` lists the entity
  type of each `___` run in order, as the annotation file does.
  """

  def __init__(self, rng: random.Random, mode: str, year: int,
               vocab: Optional[dict[str, list[str]]] = None):
    self.rng = rng
    self.mode = mode
    self.year = year
    self.vocab = vocab or {}
    self.forms: collections.Counter = collections.Counter()
    self.entities: list[str] = []

  def __getitem__(self, key: str) -> str:
    rng = self.rng
    if key in PHI_SLOTS:
      if self.mode == "mimic4":
        self.entities.append(_SLOT_ENTITY[key])
        return underscore_run(rng)
      names, cum = _SLOTS[key]
      form = names[0] if len(names) == 1 else rng.choices(names, cum_weights=cum)[0]
      self.forms[form] += 1
      # A date of birth lies 20 to 89 years before the note.
      year = self.year - rng.randint(20, 89) if key == "DOB" else self.year
      return "[**" + render_form(form, rng, year) + "**]"
    if key == "n":
      return str(rng.randint(2, 9))
    if key == "age":
      return str(rng.randint(28, 89))
    if key == "agetext":
      # NOTE: 1 patient in 20 is over 90, so the age placeholder occurs in
      # many discharge summaries.
      return self["AGE90"] + " y/o" if rng.random() < 0.05 else str(rng.randint(28, 89)) + " y/o"
    return rng.choice(self.vocab[key])

  def __iter__(self):
    return iter(())

  def __len__(self) -> int:
    return 0


def expected_outcomes(forms: collections.Counter) -> collections.Counter:
  """Map planted MIMIC-III form counts to outcome counts (tags, kept, empty, unknown)."""
  out: collections.Counter = collections.Counter()
  for form, count in forms.items():
    out[FORMS[form][2]] += count
  return out


def form_kind_counts(forms: collections.Counter) -> dict[str, int]:
  """Group planted form counts by report kind (typed_name, date_full, ...)."""
  out: collections.Counter = collections.Counter()
  for form, count in forms.items():
    out[FORMS[form][0]] += count
  return dict(sorted(out.items()))
