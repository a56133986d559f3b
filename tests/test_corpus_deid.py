"""Tests of the MIMIC-III and MIMIC-IV placeholder replacement."""

import collections

import pytest

from clinical_t5.corpus import deid


def replace3(text):
  counts = collections.Counter()
  return deid.replace_mimic3_placeholders(text, counts), counts


def test_deid_tags_are_the_fifteen():
  assert len(deid.DEID_TAGS) == 15
  assert set(deid.DEID_TO_TAG.values()) | set(deid.TYPE_TO_TAG.values()) == set(deid.DEID_TAGS)


def test_two_placeholders_on_one_line():
  text, counts = replace3("Seen by [**First Name 12**] [**Last Name (NamePattern1) 3**] today.")
  assert text == "Seen by [Name] [Name] today."
  assert counts == {"mimic3": 2, "[Name]": 2}


def test_text_between_placeholders_untouched():
  text, _ = replace3("[**Hospital1 18**]  ICU,\tbed 4 (see [**Location (un) 5**]).")
  assert text == "[Company]  ICU,\tbed 4 (see [LOC] )."


def test_tag_gets_spaces_where_glued():
  text, _ = replace3("Dr.[**Last Name 3**]'s note")
  assert text == "Dr. [Name] 's note"


def test_shifted_date_kept_as_text():
  text, counts = replace3("Admitted [**2101-5-25**], seen [**5-25**] and [**5/25**].")
  assert text == "Admitted 2101-5-25, seen 5-25 and 5/25."
  assert counts == {"mimic3": 3, "kept_as_text": 3}


def test_month_name_kept_as_text():
  text, counts = replace3("Since [**March 2151**].")
  assert text == "Since March 2151."
  assert counts["kept_as_text"] == 1


def test_year_only_becomes_reg():
  text, counts = replace3("In [**2101**] he")
  assert text == "In [Reg#] he"
  assert counts["[Reg#]"] == 1


def test_empty_placeholder_becomes_nothing():
  text, counts = replace3("on [** **] at [****]")
  assert text == "on  at "
  assert counts == {"mimic3": 2, "empty": 2}


@pytest.mark.parametrize("inner", ["___", "Radiology Tech 123", "Foo"])
def test_unknown_form_becomes_misc(inner):
  text, counts = replace3(f"x [**{inner}**] y")
  assert text == "x [MISC] y"
  assert counts == {"mimic3": 1, "unknown": 1, "[MISC]": 1}


def test_never_across_line_break():
  text, counts = replace3("a [**First Name\n 1**] b [**Last Name 2**]")
  assert text == "a [**First Name\n 1**] b [Name]"
  assert counts["mimic3"] == 1


def test_non_greedy_match():
  text, _ = replace3("[**Known lastname 1**]**] tail")
  assert text == "[Name] **] tail"


@pytest.mark.parametrize("inner,tag", [
    ("First Name (Titles) 137", "[Name]"), ("Known firstname 2", "[Name]"),
    ("Initials (NamePattern4) 5", "[Name]"), ("Name (STitle) 9", "[Name]"),
    ("Clip Number (Radiology) 1", "[Reg#]"), ("Medical Record Number 3", "[Reg#]"),
    ("MD Number(1) 4", "[Reg#]"), ("Hospital Unit Name 5", "[Company]"),
    ("University/College 6", "[Company]"), ("Wardname 7", "[LOC]"),
    ("Street Address(1) 8", "[LOC]"), ("PO Box 1", "[LOC]"), ("Age over 90 ", "[Age]"),
    ("Telephone/Fax (1) 789", "[#]"), ("Pager number 2", "[#]"), ("Date range (1) 3", "[DR]"),
    ("State/Zipcode 4", "[State]"), ("E-mail address 5", "[CI]"),
    ("Dictator Info 6", "[CI]"), ("Country 7", "[Country]"), ("URL 8", "[URL]"),
    ("Month/Day/Year 9", "[YR]"), ("Year (4 digits) 1", "[YR]"), ("Month (only) 2", "[MO]"),
    ("Month Day 3", "[MO]"), ("Holiday 4", "[DAY]"), ("Day Month 5", "[MO]"),
])
def test_category_maps_in_dict_order(inner, tag):
  assert deid.classify_mimic3_placeholder(inner) == (tag, tag)


def test_mimic4_runs_become_misc():
  counts = collections.Counter()
  text = deid.replace_mimic4_placeholders("Name:  ___  Unit No: _____\nDr.___, __ ok", None, counts)
  assert text == "Name:  [MISC]  Unit No: [MISC]\nDr. [MISC] , __ ok"
  assert counts == {"mimic4": 3, "[MISC]": 3}


def test_mimic4_annotation_types_in_order():
  counts = collections.Counter()
  text = deid.replace_mimic4_placeholders("___ met ___ on ___ at ___", ["NAME", "date", "FOO"],
                                          counts)
  assert text == "[Name] met [DR] on [MISC] at [MISC]"
  assert counts == {"mimic4": 4, "[Name]": 1, "[DR]": 1, "[MISC]": 2, "unknown": 1}


def test_text_without_placeholders_is_same_object():
  text = "plain note"
  assert deid.replace_mimic3_placeholders(text) is text
  assert deid.replace_mimic4_placeholders(text) is text
