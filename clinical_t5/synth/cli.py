"""`clinical-t5 synth`: write the synthetic MIMIC-format data set.

  clinical-t5 synth --out data/synth --seed 0 --scale 1.0
  -> data/synth/mimic-iii/NOTEEVENTS.csv ... data/synth/synth_report.json
"""

import argparse
import sys
import time

from clinical_t5.synth import generate


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--out", required=True,
                      help="output directory; it must not exist or be empty unless --overwrite")
  parser.add_argument("--seed", default="0",
                      help="random seed, a whole number >= 0 (default 0); the same seed and "
                           "scale give byte-identical files")
  parser.add_argument("--scale", default=str(generate.DEFAULT_SCALE),
                      help="multiplier of the MIMIC note counts (default 1.0: about 3,000 "
                           "MIMIC-III and 1,200 MIMIC-IV notes; 700: about 2M MIMIC-III notes); "
                           "MIMIC-III keeps at least about 750 notes, which hold the task "
                           "patients and every planted quirk")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace an existing non-empty output directory once the new one "
                           "is complete")


def run(args: argparse.Namespace) -> int:
  start = time.monotonic()
  report = generate.write_dataset(args.out, seed=args.seed, scale=args.scale,
                                  overwrite=args.overwrite)
  print(f"wrote {args.out} in {time.monotonic() - start:.1f} s: {generate.describe(report)}; "
        f"counts and expected corpus statistics in {args.out}/synth_report.json",
        file=sys.stdout)
  return 0
