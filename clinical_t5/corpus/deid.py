"""The de-identification tags that replace MIMIC placeholders in the corpus.

MIMIC-III writes PHI as `[**Category qualifier 123**]` and MIMIC-IV as `___`.
The corpus replaces each placeholder with one of these 15 single tags, and the
vocabulary holds each tag as one piece, so a placeholder costs one token.
"""

# NOTE: the spelling and case follow the Clinical-T5 preprocessing code
# (`[Name]`, not the `[NAME]` of its model card).
DEID_TAGS: tuple[str, ...] = (
    "[Name]", "[Reg#]", "[Company]", "[LOC]", "[Age]", "[#]", "[DR]", "[State]",
    "[CI]", "[Country]", "[URL]", "[YR]", "[MO]", "[DAY]", "[MISC]",
)
