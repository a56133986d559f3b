"""Benchmark: `clinical-t5 corpus build` beside a pandas port of the Clinical-T5 scripts.

Generates a MIMIC-III-shaped data set with the synthetic generator (200k
NOTEEVENTS rows by default; 200k and then 2M with --full), then runs on the same files, each
in its own process:

  reference  a straight pandas port of the Clinical-T5 preprocessing scripts:
             dedup_mimic_iii.py (fillna + groupby-apply), convert_deid_to_tag +
             replace_deid_tags (pieces joined with spaces), remove_patient_ids
             (CLIP, RadQA, n2c2) and the headerless text-only CSV write, each
             loading the whole CSV into pandas as the scripts do;
  ours       `clinical-t5 corpus build` with the same removal inputs.

and prints wall time and peak RSS (os.wait4 of each child) with the ratios:

  .venv/bin/python benchmarks/corpus_build.py              # 200k notes
  .venv/bin/python benchmarks/corpus_build.py --full       # 200k and 2M notes
  .venv/bin/python benchmarks/corpus_build.py --notes 50000 --workdir /tmp/bench

The generated data stays in --workdir and is reused by later runs. A side
whose resident memory passes --memory-cap-mb (default 60% of the memory
available at start) is killed rather than left to swap; its figures are then
printed as lower bounds, marked '>'.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

# NOTE: the synthetic generator writes about 3,180 NOTEEVENTS rows at scale 1
# (seed 0); the scale for N notes is N / 3180.
ROWS_PER_SCALE = 3180


def _port_convert_deid_to_tag(inner: str) -> str:
  """convert_deid_to_tag as the Clinical-T5 code describes it (dict order, fallbacks)."""
  from clinical_t5.corpus import deid  # pylint: disable=g-import-not-at-top
  for key, tag in deid.DEID_TO_TAG.items():
    if key in inner or key.lower() in inner:
      return tag
  text = inner.strip()
  if len(text.split("-")) == 3:
    return text
  if text.isnumeric():
    return "[Reg#]"
  if text.replace("-", "").replace("/", "").isnumeric():
    return text
  months = ("january", "february", "march", "april", "may", "june", "july", "august",
            "september", "october", "november", "december")
  if any(m in text.lower() for m in months):
    return text
  if not text:
    return ""
  # NOTE: the original raises NotImplementedError here; the synthetic data
  # plants unknown forms, so the port returns [MISC] to finish the run.
  return "[MISC]"


def _port_replace_deid_tags(text: str) -> str:
  pieces, last = [], 0
  for match in re.finditer(r"\[\*\*(.*?)\*\*\]", text):
    pieces.append(text[last:match.start()])
    pieces.append(_port_convert_deid_to_tag(match.group(1)))
    last = match.end()
  pieces.append(text[last:])
  return " ".join(pieces)


def run_reference(data: str, out: str) -> None:
  """Run the pandas port: whole-table reads, groupby-apply, Series.apply, to_csv."""
  import glob  # pylint: disable=g-import-not-at-top
  import pandas as pd  # pylint: disable=g-import-not-at-top

  notes = pd.read_csv(os.path.join(data, "mimic-iii", "NOTEEVENTS.csv"))

  # dedup_mimic_iii.py
  notes = notes.astype(object).fillna("NaN")

  def dedup_group(group):
    if (len(group) == 1 or (group["CHARTTIME"] == "NaN").any() or (group["CGID"] == "NaN").any()
        or (group["STORETIME"] == "NaN").any()):
      return group
    times = pd.to_datetime(group["STORETIME"], format="%Y-%m-%d %H:%M:%S")
    return group.loc[[times.idxmax()]]

  # NOTE: pandas 3 hides grouping columns from apply(), so the port groups by
  # renamed copies of the four key columns to keep them in the result.
  keys = [notes[c].rename(f"key_{c}") for c in ("CHARTTIME", "SUBJECT_ID", "CATEGORY", "CGID")]
  notes = notes.groupby(keys, group_keys=False).apply(dedup_group)

  # replace_deid_tags.py
  notes["TEXT"] = notes["TEXT"].apply(_port_replace_deid_tags)

  # remove_patient_ids.py
  row_to_subject = dict(zip(notes["ROW_ID"], notes["SUBJECT_ID"]))
  remove = set(pd.read_csv(os.path.join(data, "n2c2_subject_ids.csv"))["subject_id"])
  for path in glob.glob(os.path.join(data, "clip", "*_ids.csv")):
    remove |= {row_to_subject.get(i) for i in pd.read_csv(path, header=None)[0]}
  for path in glob.glob(os.path.join(data, "radqa", "*.json")):
    with open(path) as f:
      remove |= {row_to_subject.get(int(a["title"])) for a in json.load(f)["data"]}
  notes = notes[~notes["SUBJECT_ID"].isin(remove)]

  # convert_csv_to_pretraining_format.py
  os.makedirs(out, exist_ok=True)
  notes[["TEXT"]].to_csv(os.path.join(out, "pretraining.csv"), header=False, index=False)
  print(json.dumps({"notes": len(notes)}))


def run_ours(data: str, out: str) -> None:
  from clinical_t5 import cli  # pylint: disable=g-import-not-at-top
  code = cli.main(["corpus", "build", "--mimic3", os.path.join(data, "mimic-iii", "NOTEEVENTS.csv"),
                   "--exclude-clip", os.path.join(data, "clip"),
                   "--exclude-radqa", os.path.join(data, "radqa"),
                   "--exclude-subjects", os.path.join(data, "n2c2_subject_ids.csv"),
                   "--out", out, "--overwrite"])
  with open(os.path.join(out, "stats.json")) as f:
    stats = json.load(f)
  print(json.dumps({"notes": stats["output"]["mimic3"]["notes"]}))
  sys.exit(code)


def _rss_mb(pid: int) -> float:
  try:
    with open(f"/proc/{pid}/status") as f:
      for line in f:
        if line.startswith("VmRSS:"):
          return int(line.split()[1]) / 1024
  except OSError:
    pass
  return 0.0


def measure(mode: str, data: str, out: str, memory_cap_mb: float) -> dict:
  """Run one side in a child process; return wall seconds, peak RSS and its output.

  A child whose resident set passes `memory_cap_mb` is killed so that the
  machine does not swap or invoke the OOM killer; its result then contains
  `capped`: True, and its wall time, CPU time and RSS are lower bounds.
  """
  stdout = tempfile.TemporaryFile()
  start = time.perf_counter()
  child = subprocess.Popen([sys.executable, __file__, "--child", mode, "--data", data,
                            "--out", out], stdout=stdout, stderr=subprocess.DEVNULL)
  capped = False
  pid, status, usage = os.wait4(child.pid, os.WNOHANG)
  while pid == 0:
    if _rss_mb(child.pid) > memory_cap_mb:
      child.kill()
      capped = True
      pid, status, usage = os.wait4(child.pid, 0)
      break
    time.sleep(0.2)
    pid, status, usage = os.wait4(child.pid, os.WNOHANG)
  wall = time.perf_counter() - start
  stdout.seek(0)
  output = stdout.read().decode()
  child.returncode = os.waitstatus_to_exitcode(status)
  # ru_maxrss is in KiB on Linux.
  result = {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024, "capped": capped, "notes": None}
  if capped:
    return result
  if child.returncode != 0:
    raise SystemExit(f"{mode} failed with exit status {child.returncode}")
  return {**result, **json.loads(output.strip().splitlines()[-1])}


def generate(workdir: str, notes: int) -> str:
  from clinical_t5.synth import generate as synth  # pylint: disable=g-import-not-at-top
  data = os.path.join(workdir, f"synth_{notes}")
  if not os.path.exists(os.path.join(data, "synth_report.json")):
    start = time.perf_counter()
    synth.write_dataset(data, seed=0, scale=notes / ROWS_PER_SCALE, overwrite=True)
    print(f"generated {data} in {time.perf_counter() - start:.0f} s", flush=True)
  return data


def _default_cap_mb() -> float:
  with open("/proc/meminfo") as f:
    info = {line.split(":")[0]: int(line.split()[1]) for line in f}
  # NOTE: 60% of the memory available now leaves room for the other side's
  # page cache and for whatever else runs on the machine.
  return 0.6 * info["MemAvailable"] / 1024


def _print_size(notes: int, csv_mb: float, results: dict) -> None:
  print(f"\n{notes:,} notes, NOTEEVENTS.csv {csv_mb:.0f} MB")
  print(f"{'':10s} {'wall s':>8s} {'CPU s':>8s} {'peak RSS MB':>12s} {'notes out':>10s}")
  for name, r in results.items():
    mark = ">" if r["capped"] else " "
    notes_out = "killed" if r["capped"] else str(r["notes"])
    print(f"{name:10s} {mark}{r['wall_s']:7.1f} {mark}{r['cpu_s']:7.1f} {mark}{r['peak_rss_mb']:11.0f} "
          f"{notes_out:>10s}")
  if "reference" not in results:
    return
  ref, ours = results["reference"], results["ours"]
  if ours["capped"]:
    print("  our builder passed the memory cap and was killed; raise --memory-cap-mb")
    return
  bound = "at least " if ref["capped"] else ""
  print(f"speed-up {bound}{ref['wall_s'] / ours['wall_s']:.1f}x wall, {bound}"
        f"{ref['cpu_s'] / ours['cpu_s']:.1f}x CPU (target >= 5x); memory "
        f"{'at most ' if ref['capped'] else ''}{ours['peak_rss_mb'] / ref['peak_rss_mb']:.3f} "
        "of the reference (target <= 0.20)")
  if ref["capped"]:
    print("  the reference passed the memory cap and was killed; its columns marked '>' are "
          "lower bounds")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--notes", type=int, default=200_000, help="NOTEEVENTS rows to generate")
  parser.add_argument("--full", action="store_true",
                      help="run 200,000 and 2,000,000 notes and compare our peak RSS")
  parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "corpus_bench"),
                      help="directory for generated data and outputs (reused)")
  parser.add_argument("--skip-reference", action="store_true",
                      help="run only our builder")
  parser.add_argument("--memory-cap-mb", type=float, default=None,
                      help="kill a side whose RSS passes this (default: 60%% of available memory)")
  parser.add_argument("--child", choices=("reference", "ours"), help=argparse.SUPPRESS)
  parser.add_argument("--data", help=argparse.SUPPRESS)
  parser.add_argument("--out", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    (run_reference if args.child == "reference" else run_ours)(args.data, args.out)
    return

  if args.memory_cap_mb is not None and args.memory_cap_mb <= 0:
    parser.error(f"--memory-cap-mb must be a positive number of MB, got {args.memory_cap_mb}")
  cap = args.memory_cap_mb or _default_cap_mb()
  print(f"memory cap per side: {cap:.0f} MB", flush=True)
  sizes = (200_000, 2_000_000) if args.full else (args.notes,)
  ours_rss = {}
  for notes in sizes:
    data = generate(args.workdir, notes)
    csv_mb = os.path.getsize(os.path.join(data, "mimic-iii", "NOTEEVENTS.csv")) / 1e6
    results = {"ours": measure("ours", data, os.path.join(args.workdir, "out_ours"), cap)}
    if not args.skip_reference:
      results["reference"] = measure("reference", data, os.path.join(args.workdir, "out_ref"), cap)
      shutil.rmtree(os.path.join(args.workdir, "out_ref"), ignore_errors=True)
    _print_size(notes, csv_mb, results)
    ours_rss[notes] = results["ours"]["peak_rss_mb"]
  if len(ours_rss) > 1:
    (small, small_rss), (large, large_rss) = min(ours_rss.items()), max(ours_rss.items())
    print(f"\nour peak RSS {small_rss:.0f} MB at {small:,} notes, {large_rss:.0f} MB at "
          f"{large:,}: {large_rss / small_rss:.2f}x for {large / small:.0f}x the notes "
          "(target: roughly flat)")


if __name__ == "__main__":
  main()
