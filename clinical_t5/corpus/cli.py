"""`clinical-t5 corpus build`: the pretraining corpus from MIMIC and own notes.

  clinical-t5 corpus build --mimic3 NOTEEVENTS.csv.gz \\
      --mimic4-discharge discharge.csv.gz --mimic4-radiology radiology.csv.gz \\
      --carevue-subjects carevue_subject_ids.csv \\
      --exclude-clip clip/ --exclude-radqa radqa/ --exclude-subjects n2c2_subject_ids.csv \\
      --out corpus/

Inputs and --out may also be URLs (gs://bucket/..., anything tf.io.gfile reads).
"""

import argparse

from clinical_t5.corpus import build as build_lib
from clinical_t5.corpus import readers


def add_arguments(parser: argparse.ArgumentParser) -> None:
  commands = parser.add_subparsers(dest="corpus_command", metavar="COMMAND", required=True)
  build = commands.add_parser(
      "build", help="build the deduplicated, tagged, decontaminated TFRecord corpus",
      description="Build the pretraining corpus: drop ISERROR and binary-junk notes, remove "
      "MIMIC-III re-saves, replace de-identification placeholders with single tags, apply "
      "the MIMIC-III/IV overlap rule, remove evaluation-set patients, and write TFRecord "
      "shards with stats.json, manifest.json and removed_subjects.csv.")

  inputs = build.add_argument_group(
      "inputs", "Every input file or directory may be a local path or a URL such as "
      "gs://bucket/NOTEEVENTS.csv.gz; URL inputs are downloaded to $TMPDIR first.")
  inputs.add_argument("--mimic3", metavar="F", help="MIMIC-III NOTEEVENTS.csv or .csv.gz")
  inputs.add_argument("--mimic4-discharge", metavar="F",
                      help="MIMIC-IV-Note discharge.csv or .csv.gz")
  inputs.add_argument("--mimic4-radiology", metavar="F",
                      help="MIMIC-IV-Note radiology.csv or .csv.gz")
  inputs.add_argument("--mimic4-discharge-annotations", metavar="F",
                      help="CSV with columns note_id,entity_type: the type of the i-th ___ of "
                      "each discharge note (without it every ___ becomes [MISC])")
  inputs.add_argument("--mimic4-radiology-annotations", metavar="F",
                      help="the same for radiology notes")
  inputs.add_argument("--own-notes", metavar="F",
                      help="own notes as CSV (header row), Parquet or JSON Lines; their subject "
                      "ids share one id space with MIMIC's, both for --exclude-subjects and for "
                      "the patient-level validation split")
  inputs.add_argument("--id-column", dest="own_id_column", default="note_id", metavar="C",
                      help="column of --own-notes with the note id (default: note_id)")
  inputs.add_argument("--subject-column", dest="own_subject_column", default="subject_id",
                      metavar="C", help="column of --own-notes with the integer patient id, in the "
                      "same id space as MIMIC SUBJECT_ID, so an equal id means the same patient "
                      "(default: subject_id)")
  inputs.add_argument("--text-column", dest="own_text_column", default="text", metavar="C",
                      help="column of --own-notes with the note text (default: text)")
  inputs.add_argument("--category-column", dest="own_category_column", metavar="C",
                      help="optional column of --own-notes written as the category feature")
  inputs.add_argument("--own-placeholders", choices=build_lib.PLACEHOLDER_MODES, default="none",
                      help="placeholder syntax of --own-notes to tag: MIMIC-III [**...**], "
                      "MIMIC-IV ___, or none (default)")

  rules = build.add_argument_group("rules")
  rules.add_argument("--carevue-subjects", metavar="F",
                     help="CareVue-era MIMIC-III patients: a subject-id list, the mimic3-carevue "
                     "NOTEEVENTS.csv, or ICUSTAYS.csv; needed when MIMIC-III and MIMIC-IV "
                     "are both built")
  rules.add_argument("--no-overlap-rule", dest="overlap_rule", action="store_false",
                     help="keep every MIMIC-III note even when MIMIC-IV repeats it")
  rules.add_argument("--keep-placeholders", action="store_true",
                     help="write placeholders as they are, without tags")
  rules.add_argument("--exclude-clip", metavar="DIR",
                     help="CLIP directory: patients of the ROW_IDs in its *ids*.csv files are "
                     "removed")
  rules.add_argument("--exclude-radqa", metavar="DIR_OR_FILE",
                     help="RadQA SQuAD JSON file or directory: patients of the article titles "
                     "(ROW_IDs) are removed")
  rules.add_argument("--exclude-subjects", metavar="F", action="append", default=[],
                     help="subject-id list (header subject_id or none) whose patients are "
                     "removed; repeatable")

  output = build.add_argument_group("output")
  output.add_argument("--out", required=True, metavar="DIR",
                      help="output directory, a local path or a URL such as gs://bucket/corpus "
                      "(then staged in $TMPDIR and uploaded at the end)")
  output.add_argument("--overwrite", action="store_true",
                      help="replace a non-empty --out (only after the new build succeeds)")
  output.add_argument("--validation-fraction", type=float, default=0.01,
                      help="fraction of patients held out as the validation split "
                      "(default: 0.01)")
  output.add_argument("--num-shards", type=int,
                      help="number of train shards (default: from --shard-size-mb)")
  output.add_argument("--shard-size-mb", type=float, default=200.0,
                      help="target shard size in MB of text (10^6 bytes; default: 200)")
  output.add_argument("--seed", type=int, default=0,
                      help="seed of the patient-level validation split (default: 0)")
  output.add_argument("--memory-limit", default="256MB",
                      help="DuckDB memory limit, e.g. 256MB or 4GB; above it DuckDB spills "
                      "to disk under --out, or under $TMPDIR for a URL --out (default: 256MB)")
  output.add_argument("--max-note-mb", type=float, default=readers.DEFAULT_MAX_NOTE_MB,
                      metavar="MB",
                      help="longest CSV row or JSON line accepted, in MB (10^6 bytes); DuckDB "
                      "allocates a read buffer of this size per thread (default: "
                      f"{readers.DEFAULT_MAX_NOTE_MB:g})")
  output.add_argument("--threads", type=int,
                      help="DuckDB threads (default: the number of CPU cores)")


def run(args: argparse.Namespace) -> int:
  config = build_lib.BuildConfig(
      out=args.out, mimic3=args.mimic3, mimic4_discharge=args.mimic4_discharge,
      mimic4_radiology=args.mimic4_radiology,
      mimic4_discharge_annotations=args.mimic4_discharge_annotations,
      mimic4_radiology_annotations=args.mimic4_radiology_annotations,
      own_notes=args.own_notes, own_id_column=args.own_id_column,
      own_subject_column=args.own_subject_column, own_text_column=args.own_text_column,
      own_category_column=args.own_category_column, own_placeholders=args.own_placeholders,
      carevue_subjects=args.carevue_subjects, overlap_rule=args.overlap_rule,
      exclude_clip=args.exclude_clip, exclude_radqa=args.exclude_radqa,
      exclude_subjects=tuple(args.exclude_subjects), keep_placeholders=args.keep_placeholders,
      validation_fraction=args.validation_fraction, num_shards=args.num_shards,
      shard_size_mb=args.shard_size_mb, seed=args.seed, memory_limit=args.memory_limit,
      threads=args.threads, overwrite=args.overwrite, max_note_mb=args.max_note_mb)
  stats = build_lib.build(config)
  splits = stats["splits"]
  print(f"wrote {splits['train']['notes']} train notes in {splits['train']['shards']} shards "
        f"and {splits['validation']['notes']} validation notes in "
        f"{splits['validation']['shards']} shards to {args.out}")
  return 0
