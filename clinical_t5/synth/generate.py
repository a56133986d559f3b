"""Write a synthetic data set in the exact MIMIC-III, MIMIC-IV-Note, MedNLI, RadQA and CLIP formats.

  report = write_dataset("data/synth", seed=0, scale=1.0)
  report["files"]["mimic-iii/NOTEEVENTS.csv"]["rows"]  -> about 3,000
  report["expected_corpus"]["dropped"]["iserror"]       -> the ISERROR=1 rows planted

Layout under the output directory:

  mimic-iii/NOTEEVENTS.csv, NOTEEVENTS.csv.gz    11 columns; the .gz contains the same bytes
  mimic-iii/ICUSTAYS.csv                         DBSOURCE carevue | metavision | both
  mimic-iii-carevue/NOTEEVENTS.csv               rows of CareVue patients only
  carevue_subject_ids.csv                        header `subject_id`
  mimic-iv-note/discharge.csv.gz, radiology.csv.gz, discharge_annotation.csv, radiology_annotation.csv
  mednli/mli_{train,dev,test}_v1.jsonl
  radqa/{train,dev,test}.json                    SQuAD v2; title = a NOTEEVENTS Radiology ROW_ID
  clip/sentence_level.csv, {train,val,test}_ids.csv   doc_id = a Discharge summary ROW_ID
  n2c2_subject_ids.csv                           header `subject_id`
  synth_report.json

The same (seed, scale) always gives byte-identical files. Every random draw
comes from `random.Random` streams seeded from the seed, and nothing depends on
time, hashing or set order. Gzip headers carry mtime 0 and no file name, and
JSON keys keep their insertion order.

`scale` multiplies the MIMIC note counts (about 3,000 MIMIC-III, 600 MIMIC-IV
discharge and 600 radiology notes at 1.0). The task sets (MedNLI 1,500/200/200
pairs, RadQA 300 questions, CLIP 60 documents) do not scale. Notes are written
one subject at a time, so memory stays flat at scale 700 (2M MIMIC-III notes).

synth_report.json keys:
  seed, scale, version     the inputs and the package version.
  files                    {relative path: {"rows", "columns", "bytes"}} for every file. Rows
                           exclude the header; for RadQA JSON, rows are questions (qas) and
                           `articles` counts reports; headerless id files have `"header": false`.
  planted                  what the generator planted, counted over all MIMIC input rows:
    iserror_rows           NOTEEVENTS rows with ISERROR=1.
    resave_groups          groups of 2-3 rows with the same (CHARTTIME, SUBJECT_ID, CATEGORY,
                           CGID), all fields filled, that re-save removal collapses to one row.
    resave_rows_dropped    rows those groups lose (all but the latest STORETIME).
    kept_whole_groups      groups of 2+ rows kept whole, by the first reason that applies:
                           charttime_empty, cgid_empty, storetime_empty.
    binary_junk_notes      junk notes; binary_junk_kinds splits them into {"rtf": n,
                           "control": n}: `{\\rtf` remnants and notes of ~30% control characters.
    placeholders_mimic3    {form kind: n} of `[**...**]` placeholders (typed_name, hospital,
                           location, id, contact, age, date_full `[**2101-5-25**]`, date_year
                           `[**2101**]`, date_month_day `[**5-25**]`, date_month_name,
                           date_compound `[**Month/Day/Year 12**]`, empty `[** **]`, unknown).
    placeholder_forms_mimic3  the same by form id (every id of `phi.FORMS` occurs).
    lines_with_two_placeholders  TEXT lines holding two or more `[**...**]`.
    mimic4_underscore_runs, mimic4_long_runs  `___` runs, and those of 4+ underscores.
    crlf_fields, doubled_quote_fields, notes_over_10kb (UTF-8 bytes > 10,240),
    non_ascii_notes, notes_with_braces, notes_with_tabs, notes_with_tilde   per NOTEEVENTS row.
    mimic4_notes_over_10kb, mimic4_empty_storetime, mimic4_empty_hadm_radiology.
    empty_charttime_rows, empty_cgid_rows, empty_storetime_rows, categories {CATEGORY: n}.
    subjects_mimic3, carevue_subjects, dbsource {carevue, metavision, both, none}.
    task_subjects_with_notes  distinct CLIP, RadQA and n2c2 patients, all of whom have notes.
  expected_corpus          what `clinical-t5 corpus build` must report in stats.json for the
                           FULL build (all three MIMIC inputs, the CareVue list, CLIP, RadQA and
                           n2c2 exclusions, no annotation files). It is computed by applying
                           the corpus rules to the planted ground truth (see `rules`):
    input_rows             rows read per source (own = 0).
    dropped                iserror, binary_junk, resave, overlap (MIMIC-III Radiology and
                           Discharge summary rows of non-CareVue patients), removed_subject
                           (rows of task patients, MIMIC-III and MIMIC-IV). The planted reasons
                           are disjoint, so the counts do not depend on the order of the steps.
    removed_subjects       distinct task patients removed.
    tags                   each of the 15 tags in the written notes. MIMIC-III forms map by the
                           tag rules; `[**2101**]` is numeric, so it becomes [Reg#]; unknown
                           forms and every MIMIC-IV `___` run become [MISC].
    placeholders           in the written notes: mimic3 (all `[**...**]`), mimic4 (`___` runs),
                           kept_as_text (shifted dates and month names), empty (`[** **]`),
                           unknown (forms no rule knows, written as [MISC]).
    output_notes           notes written per source.
"""

import contextlib
import math
import os
from typing import Optional

from absl import logging

from clinical_t5 import __version__
from clinical_t5.errors import UserError
from clinical_t5.fileio import atomic_output_dir
from clinical_t5.synth import outputs
from clinical_t5.synth import phi
from clinical_t5.synth import streams

DEFAULT_SCALE = 1.0


def validate(seed: object, scale: object) -> tuple[int, float]:
  """Return (seed, scale) as int and float, or raise UserError naming the bad value."""
  try:
    seed_int = int(str(seed).strip())
  except ValueError:
    seed_int = -1
  if isinstance(seed, bool) or seed_int < 0:
    raise UserError(f"invalid --seed {seed!r}: pass a whole number >= 0")
  try:
    scale_f = float(scale)
  except (TypeError, ValueError):
    raise UserError(f"invalid --scale {scale!r}: pass a number > 0, e.g. 1.0") from None
  if not math.isfinite(scale_f) or scale_f <= 0:
    raise UserError(f"invalid --scale {scale!r}: pass a number > 0, e.g. 1.0")
  if scale_f > 5000:
    # NOTE: 5,000 is 15M MIMIC-III notes, about 7x the real table; more would
    # only fill the disk.
    raise UserError(f"invalid --scale {scale!r}: the maximum is 5000 (15M notes)")
  return seed_int, scale_f


def write_dataset(out_dir: str, seed: int = 0, scale: float = DEFAULT_SCALE,
                  overwrite: bool = False) -> dict:
  """Write the synthetic data set to `out_dir` and return its report (also in synth_report.json).

  The directory appears only when complete. Raises UserError on bad arguments or
  when `out_dir` exists and is not empty without `overwrite`.
  """
  seed, scale = validate(seed, scale)
  with contextlib.ExitStack() as stack:
    try:
      tmp = stack.enter_context(atomic_output_dir(out_dir, overwrite, marker="synth_report.json",
                                                  stage="synth"))
    except OSError as e:
      raise UserError(f"cannot create output directory {out_dir}: {e.strerror}; "
                      "choose a writable --out") from None
    report = _generate(tmp, seed, scale)
  logging.info("wrote synthetic data set (seed %d, scale %g) to %s", seed, scale, out_dir)
  return report


def _generate(out: str, seed: int, scale: float) -> dict:
  planted = streams.Planted()
  expected = streams.rules.ExpectedCorpus()

  tasks = streams.write_mimic3(out, phi.FastRandom(f"mimic3:{seed}"), scale, planted, expected)
  n2c2_mimic4 = streams.write_mimic4(out, phi.FastRandom(f"mimic4:{seed}"), scale, planted,
                                     expected)
  tasks.n2c2_subjects += n2c2_mimic4

  task_rng = phi.FastRandom(f"tasks:{seed}")
  outputs.write_clip(out, task_rng, tasks.clip_docs)
  outputs.write_radqa(out, task_rng, tasks.radqa_docs)
  outputs.write_mednli(out, phi.FastRandom(f"mednli:{seed}"))
  outputs.write_subject_list(os.path.join(out, "n2c2_subject_ids.csv"), tasks.n2c2_subjects)
  outputs.write_subject_list(os.path.join(out, "carevue_subject_ids.csv"), tasks.carevue_subjects)

  from clinical_t5.corpus.deid import DEID_TAGS  # pylint: disable=g-import-not-at-top
  report = {"seed": seed, "scale": scale, "version": __version__,
            "files": outputs.describe_files(out, planted),
            "planted": planted.to_dict(),
            "expected_corpus": expected.to_dict(DEID_TAGS)}
  outputs.write_json(os.path.join(out, "synth_report.json"), report, indent=1)
  return report


def describe(report: Optional[dict]) -> str:
  """Return a short human summary of a report (file and row counts)."""
  if not report:
    return ""
  files = report["files"]
  return (f"{files['mimic-iii/NOTEEVENTS.csv']['rows']} MIMIC-III notes, "
          f"{files['mimic-iv-note/discharge.csv.gz']['rows']} MIMIC-IV discharge and "
          f"{files['mimic-iv-note/radiology.csv.gz']['rows']} radiology notes, "
          f"{files['mednli/mli_train_v1.jsonl']['rows']} MedNLI train pairs, "
          f"{files['radqa/train.json']['rows']} RadQA train questions, "
          f"{files['clip/train_ids.csv']['rows']} CLIP train documents")
