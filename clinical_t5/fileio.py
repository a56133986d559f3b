"""File access for local paths and bucket URLs, with atomic outputs.

Every stage reads and writes through this module, so a path can be a local
path or a URL such as `gs://bucket/dir` wherever paths are accepted. URLs go
through `tf.io.gfile`, which TensorFlow imports only when the first URL is
used; local paths use the standard library and never import TensorFlow.

  is_remote("gs://b/corpus")          -> True
  is_remote("/data/corpus")           -> False
  glob("gs://b/corpus/train.tfrecord-*") -> ["gs://b/corpus/train.tfrecord-00000-of-00002", ...]

Atomic outputs: a result appears complete under its final name, or not at all.

  with atomic_output_dir("out/corpus", overwrite=False) as tmp:
    write_shards(tmp)          # tmp is out/.corpus.tmp-<random>
  # out/corpus now exists, complete.

For a local path the temporary directory is a sibling that is renamed into
place with one `os.rename`, which is atomic. For a URL, `tmp` is a local
staging directory, so the code inside the block can use the built-in `open`.
On success its files are uploaded under a hidden temporary prefix next to the
target (`gs://b/.corpus.tmp-<random>/`), and only after every upload finished
are they renamed, one object at a time, to the final prefix. Object stores
have no atomic directory rename, so a crash during that last step can leave
the final prefix with part of the new files (and, with `overwrite`, the rest
of the old ones). A crash before it leaves the final prefix untouched.
`atomic_write` on a URL stages the file locally, uploads it under a temporary
name and renames it, which on GCS makes the object appear in one step.
"""

import builtins
import contextlib
import os
import posixpath
import re
import shutil
import tempfile
import uuid
from typing import IO, Iterator, Optional

from clinical_t5.errors import UserError

# A URL scheme as in RFC 3986: a letter, then letters, digits, "+", "-" or ".".
_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_remote(path: str) -> bool:
  """Return whether `path` is a URL (`gs://...`, `file://...`) and not a plain local path."""
  return bool(_URL_RE.match(str(path)))


def _gfile():
  """Import `tf.io.gfile` on first use, so local-only commands never load TensorFlow."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.gfile


def join(path: str, *parts: str) -> str:
  """Join path components with "/" for URLs and with `os.path.join` for local paths."""
  if is_remote(path):
    return posixpath.join(path, *parts)
  return os.path.join(path, *parts)


def exists(path: str) -> bool:
  """Return whether a file or directory exists at `path`."""
  if is_remote(path):
    return _gfile().exists(path)
  return os.path.exists(path)


def isfile(path: str) -> bool:
  """Return whether `path` is an existing file (for a bucket: an object, not a prefix)."""
  if is_remote(path):
    return exists(path) and not isdir(path)
  return os.path.isfile(path)


def isdir(path: str) -> bool:
  """Return whether `path` is a directory (for a bucket: a prefix with objects below it)."""
  if is_remote(path):
    return _gfile().isdir(path)
  return os.path.isdir(path)


def listdir(path: str) -> list[str]:
  """Return the sorted entry names in directory `path`."""
  if is_remote(path):
    return sorted(name.rstrip("/") for name in _gfile().listdir(path))
  return sorted(os.listdir(path))


def glob(pattern: str) -> list[str]:
  """Return the sorted paths matching a glob pattern (`*`, `?`, `[...]`)."""
  if is_remote(pattern):
    return sorted(_gfile().glob(pattern))
  import glob as glob_lib  # pylint: disable=g-import-not-at-top
  return sorted(glob_lib.glob(pattern))


def makedirs(path: str) -> None:
  """Create directory `path` and its parents; an existing directory is fine."""
  if is_remote(path):
    _gfile().makedirs(path)
  else:
    os.makedirs(path, exist_ok=True)


def remove(path: str) -> None:
  """Delete the file at `path`."""
  if is_remote(path):
    _gfile().remove(path)
  else:
    os.remove(path)


def open(path: str, mode: str = "r", encoding: Optional[str] = None,  # pylint: disable=redefined-builtin
         newline: Optional[str] = None) -> IO:
  """Open a local file with the built-in `open`, or a URL with `tf.io.gfile.GFile`.

  For URLs the text modes read and write UTF-8 without newline translation
  (as `newline=""` does locally), so `encoding` must be UTF-8 or None.
  """
  if not is_remote(path):
    return builtins.open(path, mode, encoding=encoding, newline=newline)
  if encoding is not None and encoding.lower().replace("-", "") != "utf8":
    raise UserError(f"cannot open {path} with encoding {encoding}: bucket paths are read and "
                    "written as UTF-8; convert the file to UTF-8 or copy it to a local path")
  return _gfile().GFile(path, mode)


def _walk_files(root: str) -> list[str]:
  """Return the paths of every file below `root`, relative to it, with "/" separators."""
  files = []
  if is_remote(root):
    for dirpath, _, filenames in _gfile().walk(root):
      rel_dir = dirpath[len(root):].strip("/")
      files += [posixpath.join(rel_dir, name) if rel_dir else name for name in filenames]
  else:
    for dirpath, _, filenames in os.walk(root):
      rel_dir = os.path.relpath(dirpath, root)
      rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/")
      files += [posixpath.join(rel_dir, name) if rel_dir else name for name in filenames]
  return sorted(files)


@contextlib.contextmanager
def local_copy(path: str) -> Iterator[str]:
  """Yield a local path with the contents of `path`: itself when local, else a downloaded copy.

  For tools that only read local files (DuckDB, the sentencepiece trainer). A
  directory URL is downloaded whole. The copy is deleted when the block exits.
  """
  if not is_remote(path):
    yield path
    return

  gfile = _gfile()
  staging = tempfile.mkdtemp(prefix=".clinical-t5-download-")
  try:
    name = posixpath.basename(path.rstrip("/")) or "download"
    local = os.path.join(staging, name)
    if gfile.isdir(path):
      for rel in _walk_files(path):
        target = os.path.join(local, *rel.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        gfile.copy(posixpath.join(path, rel), target, overwrite=True)
    elif gfile.exists(path):
      gfile.copy(path, local, overwrite=True)
    else:
      raise UserError(f"input {path} not found; check the bucket path and your credentials")
    yield local
  finally:
    shutil.rmtree(staging, ignore_errors=True)


def _is_non_empty_dir(path: str) -> bool:
  if is_remote(path):
    return isdir(path) and bool(listdir(path))
  return os.path.isdir(path) and bool(os.listdir(path))


def check_output_dir(path: str, overwrite: bool, marker: Optional[str] = None,
                     stage: str = "") -> None:
  """Raise UserError when `path` cannot take a new output.

  With `marker` (a file name such as "stats.json"), `overwrite` replaces a
  non-empty directory only when it contains that file, so that `--overwrite`
  never deletes a directory that is not a previous output of the same stage
  (for example the home directory). `stage` names that stage in the message.
  """
  if exists(path) and not isdir(path):
    raise UserError(f"output path {path} exists and is not a directory; choose another --out")
  if _is_non_empty_dir(path):
    if not overwrite:
      raise UserError(f"output directory {path} is not empty; pass --overwrite to replace it "
                      "or choose another --out")
    if marker is not None and not exists(join(path, marker)):
      raise UserError(f"output directory {path} exists and does not look like a previous "
                      f"{stage or 'output'} output (no {marker}); choose another --out or "
                      "empty it")
  _check_parent_writable(path)


def check_output_file(path: str) -> None:
  """Raise UserError when no file can be written at `path` (a directory, or no writable parent)."""
  if isdir(path):
    raise UserError(f"output path {path} is a directory; pass a file name as --out")
  _check_parent_writable(path)


def _check_parent_writable(path: str) -> None:
  """Create the parent directory of local `path`; raise UserError when it is not writable."""
  if is_remote(path):
    # NOTE: a bucket has no cheap writability test; a missing permission shows up
    # at upload time, before anything is renamed into the final prefix.
    return
  parent = os.path.dirname(os.path.abspath(path))
  try:
    os.makedirs(parent, exist_ok=True)
  except OSError as e:
    raise UserError(f"cannot create parent directory {parent} of output {path}: "
                    f"{e.strerror}; choose a writable --out") from None
  if not os.access(parent, os.W_OK | os.X_OK):
    raise UserError(f"output directory {parent} is not writable; choose a writable --out")
  # Root passes the access check on /proc and /sys; creating an entry is the real test.
  try:
    os.rmdir(tempfile.mkdtemp(prefix=".clinical-t5-probe-", dir=parent))
  except OSError as e:
    raise UserError(f"cannot create entries in output directory {parent}: {e.strerror}; "
                    "choose a writable --out") from None


def _temporary_sibling(path: str, kind: str) -> str:
  """Return a hidden, unused name next to remote `path`: `parent/.name.<kind>-<hex>`."""
  parent, name = posixpath.split(path.rstrip("/"))
  return posixpath.join(parent, f".{name}.{kind}-{uuid.uuid4().hex[:12]}")


def _publish_dir(staging: str, path: str) -> None:
  """Upload local directory `staging` under a temporary prefix, then rename it to `path`."""
  gfile = _gfile()
  path = path.rstrip("/")
  files = _walk_files(staging)
  tmp_prefix = _temporary_sibling(path, "tmp")

  uploaded = []
  try:
    for rel in files:
      target = posixpath.join(tmp_prefix, rel)
      gfile.makedirs(posixpath.dirname(target))
      gfile.copy(os.path.join(staging, *rel.split("/")), target, overwrite=True)
      uploaded.append(target)
  except BaseException:
    for target in uploaded:
      with contextlib.suppress(Exception):
        gfile.remove(target)
    raise

  old_files = set(_walk_files(path)) if gfile.isdir(path) else set()
  gfile.makedirs(path)
  for rel in files:
    final = posixpath.join(path, rel)
    gfile.makedirs(posixpath.dirname(final))
    gfile.rename(posixpath.join(tmp_prefix, rel), final, overwrite=True)
  for rel in sorted(old_files - set(files)):
    gfile.remove(posixpath.join(path, rel))
  with contextlib.suppress(Exception):
    if gfile.exists(tmp_prefix):
      gfile.rmtree(tmp_prefix)


@contextlib.contextmanager
def atomic_output_dir(path: str, overwrite: bool = False, marker: Optional[str] = None,
                      stage: str = "") -> Iterator[str]:
  """Yield a temporary local directory that becomes `path` on success.

  On any exception the temporary directory is removed and `path` is left as it
  was. With `overwrite`, an existing `path` is replaced only after the new
  output is complete, and with `marker` only when it contains that file (see
  `check_output_dir`). For a URL see the module docstring: the upload is
  atomic, the final per-object rename is not.
  """
  check_output_dir(path, overwrite, marker, stage)
  if is_remote(path):
    staging = tempfile.mkdtemp(prefix=".clinical-t5-staging-")
    try:
      yield staging
      _publish_dir(staging, path)
    finally:
      shutil.rmtree(staging, ignore_errors=True)
    return

  path = os.path.abspath(path)
  parent, name = os.path.split(path)
  try:
    tmp = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=parent)
  except OSError as e:
    # For example a directory of /proc, which passes the access check for root.
    raise UserError(f"cannot create output directory {path}: {e.strerror}; choose a "
                    "writable --out") from None
  try:
    yield tmp
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  # NOTE: mkdtemp creates mode 0700; give the output the mode a plain mkdir would.
  os.chmod(tmp, 0o777 & ~_current_umask())
  old = None
  if os.path.exists(path):
    old = tempfile.mkdtemp(prefix=f".{name}.old-", dir=parent)
    os.rmdir(old)
    os.rename(path, old)
  os.rename(tmp, path)
  if old is not None:
    shutil.rmtree(old, ignore_errors=True)


def _current_umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w", **open_kwargs) -> Iterator:
  """Open a temporary sibling of `path` for writing; rename it to `path` on success."""
  if is_remote(path):
    with _atomic_write_remote(path, mode, **open_kwargs) as f:
      yield f
    return

  path = os.path.abspath(path)
  parent, name = os.path.split(path)
  try:
    os.makedirs(parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.tmp-", dir=parent)
  except OSError as e:
    raise UserError(f"cannot create output file {path}: {e.strerror}; choose a writable "
                    "path") from None
  os.close(fd)
  try:
    with builtins.open(tmp, mode, **open_kwargs) as f:
      yield f
    # NOTE: mkstemp creates mode 0600; give the file the mode a plain open would.
    os.chmod(tmp, 0o666 & ~_current_umask())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)
    raise


@contextlib.contextmanager
def _atomic_write_remote(path: str, mode: str, **open_kwargs) -> Iterator:
  """Write a local temporary file, upload it under a temporary name, rename it to `path`."""
  gfile = _gfile()
  fd, local_tmp = tempfile.mkstemp(prefix=".clinical-t5-upload-")
  os.close(fd)
  remote_tmp = _temporary_sibling(path, "tmp")
  try:
    with builtins.open(local_tmp, mode, **open_kwargs) as f:
      yield f
    gfile.makedirs(posixpath.dirname(path))
    gfile.copy(local_tmp, remote_tmp, overwrite=True)
    gfile.rename(remote_tmp, path, overwrite=True)
  except BaseException:
    with contextlib.suppress(Exception):
      if gfile.exists(remote_tmp):
        gfile.remove(remote_tmp)
    raise
  finally:
    with contextlib.suppress(FileNotFoundError):
      os.remove(local_tmp)

