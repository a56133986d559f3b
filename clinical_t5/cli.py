"""The `clinical-t5` command line.

Each subcommand lives in the module of its pipeline stage and is imported only
when it runs, so `clinical-t5 --help` stays fast and a data-only command never
loads JAX or PyTorch. A command module provides either

  add_arguments(parser: argparse.ArgumentParser) -> None
  run(args: argparse.Namespace) -> int

or, for the gin-configured entry points that take t5x-style flags
(`--gin_file=...`, `--gin.MACRO=value`),

  main_argv(argv: list[str], prog: str) -> int

Exit codes: 0 success, 1 runtime failure, 2 bad input or usage. A `UserError`
prints one line without a traceback; `--debug` (anywhere on the line) adds it.
"""

import argparse
import importlib
import os
import signal
import sys
import threading
import traceback
from typing import NoReturn, Optional, Sequence

from absl import logging

from clinical_t5 import __version__
from clinical_t5.errors import UserError

# name -> (module, one-line description)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("clinical_t5.synth.cli", "write a synthetic data set in the exact MIMIC, MedNLI, RadQA and CLIP formats"),
    "corpus": ("clinical_t5.corpus.cli", "build the deduplicated, tagged, decontaminated pretraining corpus"),
    "vocab": ("clinical_t5.vocab.cli", "train or report on a clinical SentencePiece vocabulary"),
    "tasks": ("clinical_t5_tasks.cli", "check the finetuning files, or pre-tokenize the corpus into a cache"),
    "train": ("clinical_t5.train.cli", "pretrain or finetune from gin files (t5x flags)"),
    "evaluate": ("clinical_t5.train.evaluate_cli", "evaluate a checkpoint from gin files (t5x flags)"),
    "infer": ("clinical_t5.train.infer_cli", "write predictions of a checkpoint from gin files (t5x flags)"),
    "export-hf": ("clinical_t5.model.export_cli", "export a checkpoint to Hugging Face format"),
    "import-hf": ("clinical_t5.model.import_cli", "import Hugging Face T5 weights into a checkpoint"),
    "launch": ("clinical_t5.launch.cli", "run training on a TPU pod, a SLURM cluster or local processes"),
    "flops": ("clinical_t5.experiment.flops_cli", "parameter count, FLOPs and the break-even inference tokens"),
    "experiment": ("clinical_t5.experiment.cli", "run a finetuning sweep over checkpoints, tasks, fractions and seeds"),
    "report": ("clinical_t5.experiment.report_cli", "write paper-style tables and plots from a sweep"),
    "demo": ("clinical_t5.demo", "run the whole pipeline end to end on synthetic data"),
}


class OneLineArgumentParser(argparse.ArgumentParser):
  """An ArgumentParser whose usage errors are one line and exit with status 2."""

  def error(self, message: str) -> NoReturn:
    self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _top_level_help() -> str:
  width = max(len(name) for name in COMMANDS)
  lines = [f"usage: clinical-t5 [--debug] COMMAND [ARGS]", "", "commands:"]
  lines += [f"  {name:<{width}}  {desc}" for name, (_, desc) in COMMANDS.items()]
  lines += ["", "Run `clinical-t5 COMMAND --help` for the options of one command.",
            "Exit codes: 0 success, 1 runtime failure, 2 bad input or usage."]
  return "\n".join(lines)


def _setup_logging() -> None:
  # TensorFlow's C++ logging prints device-probe lines before absl starts; keep
  # them out of one-line error output unless the user asked for them.
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  logging.use_absl_handler()
  logging.set_verbosity(logging.INFO)


def _run_command(name: str, argv: list[str]) -> int:
  module = importlib.import_module(COMMANDS[name][0])
  prog = f"clinical-t5 {name}"
  if hasattr(module, "main_argv"):
    return int(module.main_argv(argv, prog) or 0)
  parser = OneLineArgumentParser(prog=prog, description=COMMANDS[name][1])
  module.add_arguments(parser)
  args = parser.parse_args(argv)
  return int(module.run(args) or 0)


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Run one subcommand and return its exit code (the console entry point)."""
  argv = list(sys.argv[1:] if argv is None else argv)
  debug = "--debug" in argv
  argv = [a for a in argv if a != "--debug"]

  if not argv or argv[0] in ("-h", "--help"):
    print(_top_level_help())
    return 0 if argv else 2
  if argv[0] == "--version":
    print(f"clinical-t5 {__version__}")
    return 0
  name, rest = argv[0], argv[1:]
  if name not in COMMANDS:
    print(f"clinical-t5: error: unknown command {name!r}; choose one of: "
          f"{', '.join(COMMANDS)}", file=sys.stderr)
    return 2

  _setup_logging()
  previous = _raise_on_sigterm()
  try:
    return _run_command(name, rest)
  except Terminated:
    print(f"clinical-t5 {name}: stopped by SIGTERM", file=sys.stderr)
    return 128 + signal.SIGTERM
  except UserError as e:
    if debug:
      traceback.print_exc()
    print(f"clinical-t5 {name}: error: {e}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print(f"clinical-t5 {name}: interrupted", file=sys.stderr)
    return 130
  except SystemExit as e:
    return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
  except Exception as e:  # pylint: disable=broad-except
    if debug:
      traceback.print_exc()
    # NOTE: only the exception type and its first line are printed; our own code
    # never puts note text into exception messages.
    first_line = str(e).splitlines()[0][:500] if str(e) else ""
    print(f"clinical-t5 {name}: failed: {type(e).__name__}: {first_line} "
          "(rerun with --debug for the traceback)", file=sys.stderr)
    return 1
  finally:
    if previous is not None:
      signal.signal(signal.SIGTERM, previous)


class Terminated(BaseException):
  """SIGTERM, raised in the main thread so that cleanup (`finally`, atomic outputs) runs."""


def _raise_on_sigterm():
  """Make SIGTERM raise Terminated while a command runs; return the handler it replaced.

  Without this, SIGTERM ends the process at once and an atomic output folder
  stays behind as a hidden `.NAME.tmp-*` folder. The trainer installs its own
  handler (checkpoint, then stop) while it trains, and restores this one.
  """
  if threading.current_thread() is not threading.main_thread():
    return None

  def handle(signum, frame):  # pylint: disable=unused-argument
    raise Terminated()
  return signal.signal(signal.SIGTERM, handle)


if __name__ == "__main__":
  sys.exit(main())
