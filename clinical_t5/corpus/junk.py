"""The binary-junk rule: notes that are Word/RTF remnants or binary garbage.

A note is junk when its text contains `{\\rtf`, or when more than 5% of its
characters are control characters other than tab, line feed and carriage
return. Control characters are the Unicode category Cc: U+0000-U+001F,
U+007F-U+009F. Both the synthetic data generator and the corpus builder use
this rule.

  >>> is_binary_junk("{\\\\rtf1\\\\ansi Patient stable")
  True
  >>> is_binary_junk("BP 120/80\\r\\nHR 72\\t(stable)")
  False
  >>> is_binary_junk("ab\\x01\\x02" + "c" * 30)   # 2 of 34 characters: 5.9%
  True

The corpus builder evaluates the SQL form (`sql_is_junk`) inside DuckDB while it
reads the CSV; `is_binary_junk` is the same rule in Python.
"""

import re

RTF_MARKER = "{\\rtf"
# NOTE: 5% as the synthetic data contract defines the rule; a note at exactly
# 5% is kept.
MAX_CONTROL_FRACTION = 0.05

_CONTROL_CLASS = "[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]"
_CONTROL = re.compile(_CONTROL_CLASS)


def is_binary_junk(text: str) -> bool:
  """Return whether `text` is an RTF remnant or mostly control characters."""
  if RTF_MARKER in text:
    return True
  if _CONTROL.search(text) is None:
    return False
  controls = len(_CONTROL.findall(text))
  return controls > MAX_CONTROL_FRACTION * len(text)


def sql_is_junk(column: str) -> str:
  """Return a DuckDB boolean expression of the junk rule on VARCHAR `column`.

  RE2 (DuckDB's regex engine) reads `\\x00` style escapes, and the count of
  control characters is the length lost by deleting them.
  """
  controls = f"(length({column}) - length(regexp_replace({column}, '{_CONTROL_CLASS}', '', 'g')))"
  return (f"(coalesce(contains({column}, '{RTF_MARKER}'), false) OR "
          f"coalesce(CASE WHEN regexp_matches({column}, '{_CONTROL_CLASS}') "
          f"THEN {controls} > {MAX_CONTROL_FRACTION} * length({column}) ELSE false END, false))")
