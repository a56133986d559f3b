"""De-identification placeholders to single tags, as in the Clinical-T5 corpus.

MIMIC-III writes PHI as `[**Category qualifier 123**]` and MIMIC-IV as `___`.
The corpus replaces each placeholder with one of 15 single tags, and the
vocabulary holds each tag as one piece, so a placeholder costs one token:

  >>> replace_mimic3_placeholders("Seen by [**First Name 12**] [**Last Name 3**] on [**2101-5-25**].")
  'Seen by [Name] [Name] on 2101-5-25.'
  >>> replace_mimic3_placeholders("Dr.[**Last Name 3**]'s note")
  "Dr. [Name] 's note"
  >>> replace_mimic4_placeholders("Name:  ___  Unit No: ____", ["NAME"])
  'Name:  [Name]  Unit No: [MISC]'

Spacing rule: a tag gets one space on each side where the neighbouring
character is not already whitespace (or the start/end of the note), so a tag is
always its own word, and text between two placeholders is never changed. The
Clinical-T5 scripts join the split pieces with single spaces, which doubles
spaces that were already there; this module adds only the missing ones.
Placeholders kept as text (shifted dates such as `2101-5-25`, `5/25`, month
names) and empty placeholders (`[** **]` becomes '') get no added spaces.
"""

import collections
import functools
import re
from typing import Optional, Sequence

# NOTE: the spelling and case follow the Clinical-T5 preprocessing code
# (`[Name]`, not the `[NAME]` of its model card).
DEID_TAGS: tuple[str, ...] = (
    "[Name]", "[Reg#]", "[Company]", "[LOC]", "[Age]", "[#]", "[DR]", "[State]",
    "[CI]", "[Country]", "[URL]", "[YR]", "[MO]", "[DAY]", "[MISC]",
)

# Substring keys of MIMIC-III placeholder categories, tried in dict order as
# `convert_deid_to_tag` of the Clinical-T5 code does: the first key found wins,
# so `Month/Day/Year` is [YR] (Year before Month) and `Hospital Unit Name` is
# [Company].
# NOTE: the generic key "Name" comes last. The Clinical-T5 description groups
# keys by tag with "Name" in the first group, but its own examples
# (`Hospital Unit Name` -> [Company], `Wardname` -> [LOC]) only hold when
# "Name" is tried after "Hospital" and "Wardname".
DEID_TO_TAG: dict[str, str] = {
    "First Name": "[Name]", "Last Name": "[Name]", "Initials": "[Name]",
    "Known lastname": "[Name]", "Known firstname": "[Name]",
    "Clip Number (Radiology)": "[Reg#]", "Numeric Identifier": "[Reg#]",
    "Medical Record Number": "[Reg#]", "MD Number": "[Reg#]", "Job Number": "[Reg#]",
    "Unit Number": "[Reg#]",
    "Hospital": "[Company]", "Company": "[Company]", "College": "[Company]",
    "Location": "[LOC]", "Street Address": "[LOC]", "Wardname": "[LOC]",
    "Apartment Address": "[LOC]", "PO Box": "[LOC]",
    "Age over 90": "[Age]",
    "Telephone/Fax": "[#]", "Serial Number": "[#]", "Social Security Number": "[#]",
    "Pager number": "[#]", "Provider Number": "[#]",
    "Date Range": "[DR]", "Date range": "[DR]",
    "State": "[State]",
    "E-mail address": "[CI]", "CC Contact Info": "[CI]", "Attending Info": "[CI]",
    "Dictator Info": "[CI]",
    "Country": "[Country]",
    "URL": "[URL]",
    "Year": "[YR]",
    "Month": "[MO]",
    "Day": "[DAY]", "Holiday": "[DAY]",
    "Name": "[Name]",
}

# MIMIC-IV annotation `entity_type` values to tags.
TYPE_TO_TAG: dict[str, str] = {
    "URL": "[URL]", "ORGANIZATION": "[Company]", "AGE": "[Age]", "NAME": "[Name]",
    "PROFESSION": "[MISC]", "ID": "[Reg#]", "EMAIL": "[CI]", "LOCATION": "[LOC]",
    "CONTACT": "[CI]", "DATE": "[DR]", "MISC": "[MISC]",
}

MISC_TAG = "[MISC]"

# A key matches as written or lowercased, i.e. case-insensitively.
_LOWERED_KEYS = tuple((key.lower(), tag) for key, tag in DEID_TO_TAG.items())

# Counter keys besides the tags themselves (see `replace_mimic3_placeholders`).
COUNT_MIMIC3 = "mimic3"
COUNT_MIMIC4 = "mimic4"
COUNT_KEPT_AS_TEXT = "kept_as_text"
COUNT_EMPTY = "empty"
COUNT_UNKNOWN = "unknown"
PLACEHOLDER_COUNT_KEYS = (COUNT_MIMIC3, COUNT_MIMIC4, COUNT_KEPT_AS_TEXT, COUNT_EMPTY,
                          COUNT_UNKNOWN)

# Non-greedy, and `[^\r\n]` keeps a match on one line: an unclosed `[**` never
# swallows the text up to a later placeholder.
MIMIC3_PLACEHOLDER = re.compile(r"\[\*\*([^\r\n]*?)\*\*\]")
# Three or more underscores (`____*` in the Clinical-T5 code).
MIMIC4_PLACEHOLDER = re.compile(r"___+")

_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december")

# Outcomes of `classify_mimic3_placeholder` besides a tag; they are also the
# Counter keys of `replace_mimic3_placeholders`.
_KEPT, _EMPTY, _UNKNOWN = COUNT_KEPT_AS_TEXT, COUNT_EMPTY, COUNT_UNKNOWN


@functools.lru_cache(maxsize=1 << 16)
def classify_mimic3_placeholder(inner: str) -> tuple[str, str]:
  """Map the inner text of `[**...**]` to (replacement, outcome).

  The outcome is a tag, "kept_as_text" (e.g. a shifted date), "empty" or
  "unknown" (no rule matched; the replacement is [MISC]).

  >>> classify_mimic3_placeholder("Month/Day/Year 123")
  ('[YR]', '[YR]')
  >>> classify_mimic3_placeholder("2101-5-25")
  ('2101-5-25', 'kept_as_text')
  """
  lowered = inner.lower()
  for key, tag in _LOWERED_KEYS:
    if key in lowered:
      return tag, tag

  text = inner.strip()
  if not text:
    return "", _EMPTY
  if len(text.split("-")) == 3:
    return text, _KEPT
  if text.isdigit():
    # NOTE: as in the Clinical-T5 code, a year-only `[**2101**]` becomes [Reg#].
    return "[Reg#]", "[Reg#]"
  if text.replace("-", "").replace("/", "").isdigit():
    return text, _KEPT
  text_lowered = text.lower()
  if any(month in text_lowered for month in _MONTHS):
    return text, _KEPT
  return MISC_TAG, _UNKNOWN


def _spaced(tag: str, text: str, start: int, end: int) -> str:
  """Return `tag` with a space added on each side that touches non-whitespace."""
  before = " " if start > 0 and not text[start - 1].isspace() else ""
  after = " " if end < len(text) and not text[end].isspace() else ""
  return before + tag + after


def replace_mimic3_placeholders(text: str,
                                counts: Optional[collections.Counter] = None) -> str:
  """Replace every MIMIC-III `[**...**]` placeholder in `text`.

  `counts`, when given, is incremented by: "mimic3" per placeholder, the tag per
  placeholder that became a tag (unknown forms count as "[MISC]" too),
  "kept_as_text", "empty" and "unknown".
  """
  if "[**" not in text:
    return text
  outcomes = []

  def substitute(match: re.Match) -> str:
    replacement, outcome = classify_mimic3_placeholder(match.group(1))
    outcomes.append(outcome)
    if outcome == _KEPT or outcome == _EMPTY:
      return replacement
    return _spaced(replacement, match.string, match.start(), match.end())

  replaced = MIMIC3_PLACEHOLDER.sub(substitute, text)
  if counts is not None and outcomes:
    counts.update(outcomes)
    counts[COUNT_MIMIC3] += len(outcomes)
    unknown = outcomes.count(_UNKNOWN)
    if unknown:
      counts[MISC_TAG] += unknown
  return replaced


def replace_mimic4_placeholders(text: str,
                                entity_types: Optional[Sequence[str]] = None,
                                counts: Optional[collections.Counter] = None) -> str:
  """Replace every MIMIC-IV `___` run in `text` with a tag.

  The i-th run takes the tag of `entity_types[i]` (an annotation `entity_type`
  such as "NAME"); runs beyond the list, and types missing from TYPE_TO_TAG,
  become [MISC]. `counts` is incremented by "mimic4" per run, by the tag, and by
  "unknown" for an entity type missing from TYPE_TO_TAG.
  """
  position = 0

  def substitute(match: re.Match) -> str:
    nonlocal position
    tag = MISC_TAG
    if entity_types is not None and position < len(entity_types):
      entity_type = entity_types[position]
      tag = TYPE_TO_TAG.get(entity_type.strip().upper(), "")
      if not tag:
        tag = MISC_TAG
        if counts is not None:
          counts[COUNT_UNKNOWN] += 1
    position += 1
    if counts is not None:
      counts[COUNT_MIMIC4] += 1
      counts[tag] += 1
    return _spaced(tag, match.string, match.start(), match.end())

  if "___" not in text:
    return text
  return MIMIC4_PLACEHOLDER.sub(substitute, text)
