"""Tests of `corpus build` with URL inputs and outputs.

`file://` and `ram://` URLs go through tf.io.gfile, the same code path as
`gs://`. A URL build must write the same corpus as the local build of the
same files, and its manifest must name the URLs.
"""

import json
import os
import subprocess
import sys
import tempfile

import pytest

import corpus_testlib as lib
from clinical_t5 import fileio
from clinical_t5.corpus import build
from clinical_t5.errors import UserError


def _url(path) -> str:
  return "file://" + str(path)


def _full_config(base: str, out: str) -> build.BuildConfig:
  """The FULL build of the `corpus_dir` fixture, with every path under `base`."""
  return build.BuildConfig(
      out=out,
      mimic3=f"{base}/mimic-iii/NOTEEVENTS.csv.gz",
      mimic4_discharge=f"{base}/mimic-iv-note/discharge.csv.gz",
      mimic4_radiology=f"{base}/mimic-iv-note/radiology.csv.gz",
      carevue_subjects=f"{base}/carevue_subject_ids.csv",
      exclude_clip=f"{base}/clip",
      exclude_radqa=f"{base}/radqa",
      exclude_subjects=(f"{base}/n2c2_subject_ids.csv",),
      validation_fraction=0.05,
  )


@pytest.fixture(scope="module")
def url_build(synth_dir, tmp_path_factory):
  """The FULL build from file:// inputs to a file:// output; returns (out dir, stats, tmpdir)."""
  out = tmp_path_factory.mktemp("url_corpus") / "corpus"
  downloads = tmp_path_factory.mktemp("tmpdir")
  with pytest.MonkeyPatch.context() as patch:
    # Downloads go to the temporary directory; a private one shows what is left behind.
    patch.setattr(tempfile, "tempdir", str(downloads))
    stats = build.build(_full_config(_url(synth_dir), _url(out)))
  return out, stats, downloads


def test_url_build_matches_local_build(url_build, corpus_dir):
  out, stats, _ = url_build
  assert stats == json.loads((corpus_dir / "stats.json").read_text())
  assert sorted(os.listdir(out)) == sorted(os.listdir(corpus_dir))
  for name in os.listdir(corpus_dir):
    if name != "manifest.json":
      assert (out / name).read_bytes() == (corpus_dir / name).read_bytes(), name


def test_url_manifest_names_urls(url_build, corpus_dir, synth_dir):
  out, _, _ = url_build
  manifest = json.loads((out / "manifest.json").read_text())
  local = json.loads((corpus_dir / "manifest.json").read_text())
  assert len(manifest["inputs"]) == len(local["inputs"]) == 11
  for url_input, local_input in zip(manifest["inputs"], local["inputs"]):
    assert url_input["path"] == _url(local_input["path"])
    for key in ("option", "name", "bytes", "sha256"):
      assert url_input[key] == local_input[key], key
  options = manifest["options"]
  assert options["out"] == _url(out)
  assert options["exclude_clip"] == _url(synth_dir / "clip")
  assert options["exclude_subjects"] == [_url(synth_dir / "n2c2_subject_ids.csv")]
  assert manifest["outputs"] == local["outputs"]


def test_url_build_removes_downloads(url_build):
  _, _, downloads = url_build
  assert os.listdir(downloads) == []


def test_ram_filesystem_build(tmp_path):
  # ram:// has no real directories, like a bucket.
  rows = [lib.mimic3_row(ROW_ID=i, SUBJECT_ID=10 + i % 3, CHARTTIME=f"2150-01-0{i} 10:00:00",
                         TEXT=f"Seen by [**Doctor {i}**].")
          for i in range(1, 7)]
  notes = lib.write_noteevents(tmp_path / "NOTEEVENTS.csv.gz", rows)
  subjects = lib.write_ids(tmp_path / "n2c2.csv", [11], header="subject_id")
  base = "ram://corpus-url-test"
  for path in (notes, subjects):
    with open(path, "rb") as src, fileio.open(f"{base}/in/{os.path.basename(path)}", "wb") as dst:
      dst.write(src.read())

  stats = build.build(build.BuildConfig(
      out=f"{base}/out", mimic3=f"{base}/in/NOTEEVENTS.csv.gz",
      exclude_subjects=(f"{base}/in/n2c2.csv",), validation_fraction=0.0))
  local_stats, _ = lib.build_corpus(tmp_path, mimic3=notes, exclude_subjects=(subjects,))
  assert stats == local_stats
  assert stats["dropped"]["removed_subject"] == 2
  with fileio.open(f"{base}/out/stats.json") as f:
    assert json.load(f) == stats
  with fileio.open(f"{base}/out/train.tfrecord-00000-of-00001", "rb") as f:
    shard = f.read()
  assert shard == (tmp_path / "out" / "train.tfrecord-00000-of-00001").read_bytes()


def test_url_error_names_url_not_copy(tmp_path):
  path = lib.write_csv(tmp_path / "own.csv", ["note_id", "subject_id", "body"],
                       [{"note_id": "a", "subject_id": 1, "body": lib.PHI_MARKER}])
  with pytest.raises(UserError) as error:
    build.build(build.BuildConfig(out=str(tmp_path / "out"), own_notes=_url(path)))
  message = str(error.value)
  assert f"--own-notes {_url(path)}: missing column 'text'" in message
  assert "download" not in message
  assert lib.PHI_MARKER not in message
  assert not (tmp_path / "out").exists()


def test_missing_url_input(tmp_path):
  missing = _url(tmp_path / "missing.csv.gz")
  with pytest.raises(UserError, match=f"--mimic3 {missing}: not found"):
    build.build(build.BuildConfig(out=str(tmp_path / "out"), mimic3=missing))
  assert not (tmp_path / "out").exists()


def test_missing_url_clip_dir(tmp_path):
  notes = lib.write_noteevents(tmp_path / "n.csv", [lib.mimic3_row()])
  with pytest.raises(UserError, match="--exclude-clip .*: not found"):
    build.build(build.BuildConfig(out=str(tmp_path / "out"), mimic3=notes,
                                  exclude_clip=_url(tmp_path / "clip")))


def test_local_build_does_not_import_tensorflow(tmp_path):
  notes = lib.write_noteevents(tmp_path / "n.csv.gz", [lib.mimic3_row()])
  code = (
      "import sys\n"
      "from clinical_t5.corpus import build\n"
      f"build.build(build.BuildConfig(out={str(tmp_path / 'out')!r}, mimic3={notes!r}))\n"
      "print('tensorflow' in sys.modules)\n")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
  assert result.stdout.strip() == "False"
  assert (tmp_path / "out" / "stats.json").exists()
