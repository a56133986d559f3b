"""Atomic outputs: a result appears complete under its final name, or not at all.

Every command writes into a temporary sibling and renames it into place only
after the last byte is written. A failed or interrupted run therefore leaves no
partial output behind, and a later run never mistakes a half-written directory
for a finished one.

  with atomic_output_dir("out/corpus", overwrite=False) as tmp:
    write_shards(tmp)          # tmp is out/.corpus.tmp-<pid>-<random>
  # out/corpus now exists, complete.
"""

import contextlib
import os
import shutil
import tempfile
from typing import Iterator

from clinical_t5.errors import UserError


def _is_non_empty_dir(path: str) -> bool:
  return os.path.isdir(path) and bool(os.listdir(path))


def check_output_dir(path: str, overwrite: bool) -> None:
  """Raise UserError when `path` cannot take a new output."""
  if os.path.exists(path) and not os.path.isdir(path):
    raise UserError(f"output path {path} exists and is not a directory; choose another --out")
  if _is_non_empty_dir(path) and not overwrite:
    raise UserError(f"output directory {path} is not empty; pass --overwrite to replace it "
                    "or choose another --out")
  parent = os.path.dirname(os.path.abspath(path))
  try:
    os.makedirs(parent, exist_ok=True)
  except OSError as e:
    raise UserError(f"cannot create parent directory {parent} of output {path}: "
                    f"{e.strerror}; choose a writable --out") from None
  if not os.access(parent, os.W_OK | os.X_OK):
    raise UserError(f"output directory {parent} is not writable; choose a writable --out")


@contextlib.contextmanager
def atomic_output_dir(path: str, overwrite: bool = False) -> Iterator[str]:
  """Yield a temporary directory that is renamed to `path` on success.

  On any exception the temporary directory is removed and `path` is left as it
  was. With `overwrite`, an existing `path` is replaced only after the new
  output is complete.
  """
  check_output_dir(path, overwrite)
  path = os.path.abspath(path)
  parent, name = os.path.split(path)
  tmp = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=parent)
  try:
    yield tmp
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  old = None
  if os.path.exists(path):
    old = tempfile.mkdtemp(prefix=f".{name}.old-", dir=parent)
    os.rmdir(old)
    os.rename(path, old)
  os.rename(tmp, path)
  if old is not None:
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w", **open_kwargs) -> Iterator:
  """Open a temporary sibling of `path` for writing; rename it to `path` on success."""
  path = os.path.abspath(path)
  parent, name = os.path.split(path)
  os.makedirs(parent, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f".{name}.tmp-", dir=parent)
  os.close(fd)
  try:
    with open(tmp, mode, **open_kwargs) as f:
      yield f
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)
    raise
