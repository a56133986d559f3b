"""Tests of the binary-junk rule, in Python and in DuckDB SQL."""

import duckdb
import pytest

from clinical_t5.corpus import junk

CASES = [
    ("{\\rtf1\\ansi Patient stable", True),
    ("plain text\r\n\twith tab", False),
    ("ab\x01\x02" + "c" * 36, False),  # 2 of 40 characters: exactly 5%, kept
    ("ab\x01\x02" + "c" * 35, True),  # 2 of 39: above 5%
    ("x\x85" * 3, True),  # C1 control characters count too
    ("", False),
]


@pytest.mark.parametrize("text,expected", CASES)
def test_python_rule(text, expected):
  assert junk.is_binary_junk(text) is expected


def test_sql_rule_agrees():
  con = duckdb.connect()
  for text, expected in CASES:
    got = con.execute(f"SELECT {junk.sql_is_junk('t')} FROM (SELECT ?::VARCHAR AS t)",
                      [text]).fetchall()[0][0]
    assert got is expected, repr(text)
  assert con.execute(f"SELECT {junk.sql_is_junk('t')} FROM (SELECT NULL::VARCHAR AS t)"
                     ).fetchall()[0][0] is False
