"""Tests of fileio: local paths, URLs through tf.io.gfile, atomic outputs."""

import os
import subprocess
import sys

import pytest

from clinical_t5 import fileio
from clinical_t5.errors import UserError


def _url(path) -> str:
  """A file:// URL, which goes through tf.io.gfile like gs:// does."""
  return "file://" + str(path)


def test_is_remote():
  assert fileio.is_remote("gs://bucket/dir")
  assert fileio.is_remote("file:///tmp/x")
  assert not fileio.is_remote("/tmp/x")
  assert not fileio.is_remote("relative/gs://x")
  assert not fileio.is_remote("C:data")


def test_local_paths_do_not_import_tensorflow(tmp_path):
  code = (
      "import sys\n"
      "from clinical_t5 import fileio\n"
      f"p = {str(tmp_path / 'a.txt')!r}\n"
      "with fileio.atomic_write(p) as f: f.write('x')\n"
      "assert fileio.exists(p) and fileio.glob(p) == [p]\n"
      "with fileio.open(p) as f: assert f.read() == 'x'\n"
      "print('tensorflow' in sys.modules)\n")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert result.stdout.strip() == "False"


def test_url_helpers(tmp_path):
  base = _url(tmp_path)
  fileio.makedirs(base + "/a/b")
  with fileio.open(base + "/a/b/x.txt", "w") as f:
    f.write("héllo\n")
  with fileio.open(base + "/a/y.txt", "wb") as f:
    f.write(b"\x00\x01")
  assert fileio.exists(base + "/a/b/x.txt")
  assert fileio.isdir(base + "/a")
  assert fileio.listdir(base + "/a") == ["b", "y.txt"]
  assert fileio.glob(base + "/a/*/*.txt") == [base + "/a/b/x.txt"]
  with fileio.open(base + "/a/b/x.txt") as f:
    assert f.read() == "héllo\n"
  assert fileio.join(base, "a", "y.txt") == base + "/a/y.txt"
  fileio.remove(base + "/a/y.txt")
  assert not fileio.exists(base + "/a/y.txt")


def test_url_open_rejects_other_encodings(tmp_path):
  with pytest.raises(UserError, match="UTF-8"):
    fileio.open(_url(tmp_path / "x.txt"), "w", encoding="latin-1")


def test_atomic_output_dir_to_url(tmp_path):
  target = _url(tmp_path / "out")
  with fileio.atomic_output_dir(target) as staging:
    assert not fileio.is_remote(staging)
    os.makedirs(os.path.join(staging, "sub"))
    with open(os.path.join(staging, "a.json"), "w") as f:
      f.write("{}")
    with open(os.path.join(staging, "sub", "b.bin"), "wb") as f:
      f.write(b"\x01\x02")
    assert not (tmp_path / "out").exists()
  assert (tmp_path / "out" / "a.json").read_text() == "{}"
  assert (tmp_path / "out" / "sub" / "b.bin").read_bytes() == b"\x01\x02"
  assert sorted(os.listdir(tmp_path)) == ["out"]   # no temporary prefix left behind
  assert not os.path.exists(staging)


def test_atomic_output_dir_to_url_failure_leaves_nothing(tmp_path):
  target = _url(tmp_path / "out")
  with pytest.raises(RuntimeError):
    with fileio.atomic_output_dir(target) as staging:
      with open(os.path.join(staging, "a.json"), "w") as f:
        f.write("{}")
      raise RuntimeError("boom")
  assert os.listdir(tmp_path) == []


def test_atomic_output_dir_to_url_overwrite(tmp_path):
  target = _url(tmp_path / "out")
  with fileio.atomic_output_dir(target) as staging:
    for name in ("keep.txt", "stale.txt"):
      with open(os.path.join(staging, name), "w") as f:
        f.write("old")
  with pytest.raises(UserError, match="not empty"):
    with fileio.atomic_output_dir(target):
      pass
  with fileio.atomic_output_dir(target, overwrite=True) as staging:
    with open(os.path.join(staging, "keep.txt"), "w") as f:
      f.write("new")
  assert sorted(os.listdir(tmp_path / "out")) == ["keep.txt"]
  assert (tmp_path / "out" / "keep.txt").read_text() == "new"


def test_atomic_output_dir_url_that_is_a_file(tmp_path):
  (tmp_path / "f").write_text("x")
  with pytest.raises(UserError, match="not a directory"):
    with fileio.atomic_output_dir(_url(tmp_path / "f")):
      pass


def test_atomic_write_to_url(tmp_path):
  target = _url(tmp_path / "d" / "m.json")
  with fileio.atomic_write(target) as f:
    f.write("{\"a\": 1}")
  assert (tmp_path / "d" / "m.json").read_text() == "{\"a\": 1}"
  with pytest.raises(RuntimeError):
    with fileio.atomic_write(target) as f:
      f.write("partial")
      raise RuntimeError("boom")
  assert (tmp_path / "d" / "m.json").read_text() == "{\"a\": 1}"
  assert os.listdir(tmp_path / "d") == ["m.json"]


def test_atomic_write_to_ram_filesystem():
  # ram:// behaves like a bucket: no real directories.
  target = "ram://launch-test-bucket/run/metrics.json"
  with fileio.atomic_write(target, "wb") as f:
    f.write(b"abc")
  with fileio.open(target, "rb") as f:
    assert f.read() == b"abc"


def test_local_copy_of_url_dir(tmp_path):
  (tmp_path / "src" / "sub").mkdir(parents=True)
  (tmp_path / "src" / "sub" / "n.csv").write_text("a,b\n")
  with fileio.local_copy(_url(tmp_path / "src")) as local:
    assert not fileio.is_remote(local)
    with open(os.path.join(local, "sub", "n.csv")) as f:
      assert f.read() == "a,b\n"
  assert not os.path.exists(local)
  with fileio.local_copy(str(tmp_path / "src")) as local:
    assert local == str(tmp_path / "src")


def test_local_copy_missing_url(tmp_path):
  with pytest.raises(UserError, match="not found"):
    with fileio.local_copy(_url(tmp_path / "missing.csv")):
      pass


def test_local_atomic_output_dir_unchanged(tmp_path):
  target = tmp_path / "corpus"
  with fileio.atomic_output_dir(str(target)) as tmp:
    assert os.path.dirname(tmp) == str(tmp_path)
    (open(os.path.join(tmp, "stats.json"), "w")).close()
  assert os.listdir(target) == ["stats.json"]


def test_overwrite_with_marker_keeps_foreign_dir(tmp_path):
  target = tmp_path / "home"
  target.mkdir()
  (target / "notes.txt").write_text("mine")
  with pytest.raises(UserError, match=r"previous synth output \(no synth_report.json\)"):
    with fileio.atomic_output_dir(str(target), overwrite=True, marker="synth_report.json",
                                  stage="synth"):
      pass
  assert os.listdir(target) == ["notes.txt"]


def test_overwrite_with_marker_replaces_output(tmp_path):
  target = tmp_path / "corpus"
  target.mkdir()
  (target / "stats.json").write_text("{}")
  (target / "old.tfrecord").write_text("x")
  with fileio.atomic_output_dir(str(target), overwrite=True, marker="stats.json") as tmp:
    (open(os.path.join(tmp, "stats.json"), "w")).close()
  assert os.listdir(target) == ["stats.json"]


def test_overwrite_with_marker_accepts_empty_dir(tmp_path):
  target = tmp_path / "vocab"
  target.mkdir()
  with fileio.atomic_output_dir(str(target), overwrite=True, marker="vocab_info.json") as tmp:
    (open(os.path.join(tmp, "vocab_info.json"), "w")).close()
  assert os.listdir(target) == ["vocab_info.json"]


def test_url_overwrite_with_marker_keeps_foreign_prefix(tmp_path):
  (tmp_path / "out").mkdir()
  (tmp_path / "out" / "keep.txt").write_text("old")
  with pytest.raises(UserError, match="no stats.json"):
    with fileio.atomic_output_dir(_url(tmp_path / "out"), overwrite=True, marker="stats.json"):
      pass
  assert (tmp_path / "out" / "keep.txt").read_text() == "old"


def test_atomic_write_unwritable_path_is_user_error(tmp_path):
  (tmp_path / "file").write_text("x")
  for path in ("/proc/nope/r.json", str(tmp_path / "file" / "r.json")):
    with pytest.raises(UserError, match="cannot create output file"):
      with fileio.atomic_write(path) as f:
        f.write("{}")


def test_atomic_output_dir_in_proc_is_user_error():
  with pytest.raises(UserError, match="choose a writable --out"):
    with fileio.atomic_output_dir("/proc/clinical-t5-out"):
      pass
