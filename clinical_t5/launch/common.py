"""Checks shared by the launchers: trainer arguments and the gin files they name.

A launcher starts the same command on many hosts, so a typo in a gin path
must fail on the launching machine, in one line, before any host starts:

  gin_files(["--gin_file=gin/runs/pretrain.gin", "--gin_file", "my.gin", "--gin.X=1"])
  -> ["gin/runs/pretrain.gin", "my.gin"]
  check_gin_files(["--gin_file=missing.gin"], search_dirs=["."])
  -> UserError("gin file missing.gin (--gin_file) not found in .; ...")
"""

import os
import re
from typing import Optional, Sequence

from clinical_t5 import fileio
from clinical_t5.errors import UserError


def gin_files(args: Sequence[str]) -> list[str]:
  """Return the values of every `--gin_file=X` and `--gin_file X` in trainer arguments."""
  files = []
  for i, arg in enumerate(args):
    if arg.startswith("--gin_file="):
      files.append(arg.split("=", 1)[1])
    elif arg == "--gin_file":
      if i + 1 >= len(args):
        raise UserError("--gin_file at the end of the trainer arguments needs a file name")
      files.append(args[i + 1])
  return files


def gin_search_dirs(args: Sequence[str], defaults: Sequence[str]) -> list[str]:
  """Return the `--gin_search_paths` directories (comma lists) followed by `defaults`."""
  dirs = []
  for i, arg in enumerate(args):
    value = None
    if arg.startswith("--gin_search_paths="):
      value = arg.split("=", 1)[1]
    elif arg == "--gin_search_paths" and i + 1 < len(args):
      value = args[i + 1]
    if value:
      dirs += [d for d in value.split(",") if d]
  return dirs + [d for d in defaults if d not in dirs]


class _SyntaxOnly:
  """A gin parser delegate that builds nothing: enough to find syntax errors."""

  def configurable_reference(self, scoped_configurable_name, evaluate):
    del evaluate
    return scoped_configurable_name

  def macro(self, macro_name):
    return macro_name


def resolve_gin_file(name: str, search_dirs: Sequence[str]) -> Optional[str]:
  """Return the path of gin file `name`: itself if it exists or is a URL, else under a search dir."""
  if fileio.is_remote(name) or os.path.isabs(name):
    return name if fileio.exists(name) else None
  for directory in search_dirs:
    candidate = os.path.join(directory, name)
    if os.path.exists(candidate):
      return candidate
  return None


def _read_gin_text(path: str, name: str) -> str:
  try:
    with fileio.open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise UserError(f"gin file {name} is unreadable ({e.strerror or type(e).__name__}); "
                    "check its permissions") from None
  try:
    return data.decode("utf-8")
  except UnicodeDecodeError as e:
    raise UserError(f"gin file {name} is not UTF-8 text (byte {e.start}); pass a gin "
                    "config file") from None


def check_gin_file(path: str, name: str, search_dirs: Sequence[str], depth: int = 0) -> None:
  """Raise UserError unless `path` reads as UTF-8 and parses as gin (includes too)."""
  from gin import config_parser  # pylint: disable=g-import-not-at-top

  if os.path.isdir(path):
    raise UserError(f"gin file {name} is a directory; pass a .gin file")
  text = _read_gin_text(path, name)
  try:
    statements = list(config_parser.ConfigParser(text, _SyntaxOnly()))
  except SyntaxError as e:
    raise UserError(f"gin file {name} has a syntax error at line {e.lineno}: {e.msg}; "
                    "fix the file") from None

  # NOTE: 10 levels of `include` is far beyond any real config; it stops cycles.
  if depth > 10:
    raise UserError(f"gin file {name} includes files more than 10 levels deep; "
                    "check for an include cycle")
  file_dir = os.path.dirname(path) if not fileio.is_remote(path) else None
  for statement in statements:
    if isinstance(statement, config_parser.IncludeStatement):
      dirs = list(search_dirs) + ([file_dir] if file_dir else [])
      included = resolve_gin_file(statement.filename, dirs)
      if included is None:
        raise UserError(f"gin file {name} includes {statement.filename}, which is not found "
                        f"in {', '.join(dirs)}; fix the include or add --gin_search_paths")
      check_gin_file(included, statement.filename, search_dirs, depth + 1)


def check_gin_files(args: Sequence[str], search_dirs: Sequence[str]) -> list[str]:
  """Check every gin file named in `args`; return their resolved paths in order.

  Raises UserError when the trainer arguments name no gin file, or when one is
  missing, unreadable, not UTF-8 or not valid gin syntax.
  """
  names = gin_files(args)
  if not names:
    raise UserError("the trainer arguments name no --gin_file; pass e.g. -- "
                    "--gin_file=gin/runs/pretrain.gin --gin_file=gin/models/t5_1_1_base.gin")
  dirs = gin_search_dirs(args, search_dirs)
  resolved = []
  for name in names:
    path = resolve_gin_file(name, dirs)
    if path is None:
      raise UserError(f"gin file {name} (--gin_file) not found in {', '.join(dirs)}; "
                      "check the path")
    check_gin_file(path, name, dirs)
    resolved.append(path)
  return resolved


def gin_macro(args: Sequence[str], macro: str) -> Optional[str]:
  """Return the last `--gin.MACRO=value` in `args`, with one level of quotes removed."""
  value = None
  for arg in args:
    if arg.startswith(f"--gin.{macro}="):
      value = arg.split("=", 1)[1].strip()
  if value is not None:
    match = re.fullmatch(r"""(['"])(.*)\1""", value)
    value = match.group(2) if match else value
  return value


def positive_int(text: str, what: str) -> int:
  """Parse a positive integer option value; UserError names `what` and the value."""
  if not re.fullmatch(r"\s*\d+\s*", text or "") or int(text) < 1:
    raise UserError(f"{what} must be a positive integer, got {text!r}")
  return int(text)


_SAFE_RE = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")


def shell_quote(text: str) -> str:
  """Quote `text` for bash, preferring the most readable form.

  shell_quote("a b")                 -> 'a b'
  shell_quote("--gin.X='gs://b/m'")  -> "--gin.X='gs://b/m'"
  """
  if _SAFE_RE.fullmatch(text):
    return text
  if "'" not in text:
    return f"'{text}'"
  escaped = text
  for ch in ("\\", '"', "$", "`"):
    escaped = escaped.replace(ch, "\\" + ch)
  return f'"{escaped}"'


def shell_join(argv: Sequence[str]) -> str:
  """Join argv into one bash command line with `shell_quote`."""
  return " ".join(shell_quote(a) for a in argv)
