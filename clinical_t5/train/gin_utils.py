"""t5x-style gin flags: `--gin_file`, `--gin_bindings`, `--gin.MACRO=value`, `--gin_search_paths`.

  argv:  --gin_file=gin/runs/pretrain.gin --gin.MODEL_DIR="'/tmp/m'" --gin.TRAIN_STEPS=1000
  ->     files ["gin/runs/pretrain.gin"], bindings ["MODEL_DIR = '/tmp/m'", "TRAIN_STEPS = 1000"]

Gin mistakes become one `UserError` line, raised before anything compiles:
  --gin.MODEL_DRI="'/x'"   -> unknown macro MODEL_DRI (did you mean MODEL_DIR?) ...
  no --gin.MODEL_DIR       -> missing required macro MODEL_DIR: set --gin.MODEL_DIR=...
  --gin.MODEL_DIR=/x       -> invalid gin binding "MODEL_DIR = /x": ... strings need quotes
"""

import argparse
import difflib
import logging
import os
import re
from typing import Optional, Sequence

import gin

from clinical_t5.errors import UserError

# The repository root (editable install) and its gin/ directory are on the search path,
# so both "gin/runs/pretrain.gin" and "runs/pretrain.gin" resolve from any directory.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_SEARCH_PATHS = (REPO_ROOT, os.path.join(REPO_ROOT, "gin"))

_MACRO_BINDING = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$", re.S)
_REQUIRED_MESSAGE = re.compile(r"(\w+)/macro\.value set to `%gin\.REQUIRED`")


def rewrite_gin_args(argv: Sequence[str]) -> list[str]:
  """Turn `--gin.NAME=VALUE` into `--gin_bindings=NAME = VALUE` (as t5x does)."""
  out = []
  for arg in argv:
    if arg.startswith("--gin.") and "=" in arg:
      name, value = arg[len("--gin."):].split("=", 1)
      out.append(f"--gin_bindings={name} = {value}")
    else:
      out.append(arg)
  return out


def add_gin_flags(parser: argparse.ArgumentParser) -> None:
  """Add the t5x gin flags (and the multi-process flags) to a parser."""
  parser.add_argument("--gin_file", action="append", default=[],
                      help="gin file to parse (repeatable; later files override earlier ones); "
                           "searched in --gin_search_paths, the repository root and gin/")
  parser.add_argument("--gin_bindings", action="append", default=[],
                      help="one gin binding such as \"MODEL_DIR = '/tmp/m'\" (repeatable); "
                           "--gin.MODEL_DIR=\"'/tmp/m'\" is the short form")
  parser.add_argument("--gin_search_paths", action="append", default=[],
                      help="comma-separated directories searched for gin files and includes")
  parser.add_argument("--coordinator_address", default=None,
                      help="host:port of process 0 for multi-process runs (jax.distributed); "
                           "default: $JAX_COORDINATOR_ADDRESS, automatic on TPU")
  parser.add_argument("--process_count", type=int, default=None,
                      help="number of processes in a multi-process run (default: $JAX_PROCESS_COUNT)")
  parser.add_argument("--process_index", type=int, default=None,
                      help="index of this process, 0-based (default: $JAX_PROCESS_INDEX)")


def _search_paths(extra: Sequence[str]) -> list[str]:
  paths = []
  for item in extra:
    paths.extend(p for p in item.split(",") if p)
  return paths + list(DEFAULT_SEARCH_PATHS)


def _resolve_file(path: str, search_paths: Sequence[str]) -> str:
  if os.path.isfile(path):
    return path
  for base in search_paths:
    candidate = os.path.join(base, path)
    if os.path.isfile(candidate):
      return candidate
  raise UserError(f"gin file {path} not found (searched the current directory and "
                  f"{', '.join(search_paths)}); check --gin_file or add --gin_search_paths")


def defined_macros() -> set[str]:
  """Names of the macros defined by the gin files parsed so far."""
  from gin import config as gin_config  # pylint: disable=g-import-not-at-top
  return {scope for (scope, selector) in gin_config._CONFIG  # pylint: disable=protected-access
          if selector == "gin.macro"}


def _check_macro_bindings(bindings: Sequence[str], known: set[str]) -> None:
  for binding in bindings:
    match = _MACRO_BINDING.match(binding)
    if not match:
      continue
    name = match.group(1)
    if name in known:
      continue
    close = difflib.get_close_matches(name, sorted(known), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise UserError(f"unknown macro {name}{hint}; the gin files define: "
                    f"{', '.join(sorted(known)) or 'none'}")


class _DropPathNotFound(logging.Filter):
  """Hide gin's file-lookup lines, logged for every search path tried for every include."""

  def filter(self, record: logging.LogRecord) -> bool:
    message = str(record.getMessage())
    return not message.startswith(("Path not found", "system_path_file_exists"))


def _one_line(error: Exception) -> str:
  return " ".join(str(error).split())[:400]


def parse_gin(gin_files: Sequence[str], bindings: Sequence[str],
              search_paths: Sequence[str] = (), required_files: bool = True) -> None:
  """Clear gin, then parse files and bindings; raise UserError on any gin mistake."""
  if required_files and not gin_files:
    raise UserError("no --gin_file given; pass e.g. --gin_file=gin/runs/pretrain.gin "
                    "--gin_file=gin/models/t5_1_1_base.gin")
  gin.clear_config(clear_constants=False)
  paths = _search_paths(search_paths)
  for path in reversed(paths):
    gin.add_config_file_search_path(path)
  files = [_resolve_file(f, paths) for f in gin_files]

  path_filter = _DropPathNotFound()
  logging.getLogger().addFilter(path_filter)
  try:
    gin.parse_config_files_and_bindings(files, None, finalize_config=False)
  except (ValueError, SyntaxError, ImportError, IOError) as e:
    raise UserError(f"invalid gin file: {_one_line(e)}") from None
  finally:
    logging.getLogger().removeFilter(path_filter)
  _check_macro_bindings(bindings, defined_macros())

  for binding in bindings:
    try:
      gin.parse_config(binding)
    except (ValueError, SyntaxError, ImportError) as e:
      raise UserError(f"invalid gin binding {binding!r}: {_one_line(e)}; string values need "
                      "quotes, e.g. --gin.MODEL_DIR=\"'/tmp/m'\"") from None
  try:
    gin.finalize()
  except ValueError as e:
    match = _REQUIRED_MESSAGE.search(str(e))
    if match:
      name = match.group(1)
      raise UserError(f"missing required macro {name}: set --gin.{name}=... (see the header "
                      "of the run gin file for what it means)") from None
    raise UserError(f"invalid gin config: {_one_line(e)}") from None


def configured(fn_or_cls, **overrides):
  """Call the gin-configured version of `fn_or_cls` (bound with dynamic registration)."""
  try:
    return gin.get_configurable(fn_or_cls)(**overrides)
  except ValueError as e:
    text = _one_line(e)
    if "Required bindings" in text or "REQUIRED" in text:
      raise UserError(f"missing gin binding: {text}") from None
    raise


def macro_value(name: str, default: Optional[object] = None) -> object:
  """Value of a macro, or `default` when no gin file defines it."""
  try:
    return gin.query_parameter(f"%{name}")
  except ValueError:
    return default


def operative_config() -> str:
  return gin.operative_config_str()
