"""Progress bars that stay quiet when stderr is not a terminal (CI, log files)."""

import sys
from typing import Any, Iterable, Optional

import tqdm


def progress(iterable: Optional[Iterable[Any]] = None, *, total: Optional[int] = None,
             desc: str = "", unit: str = "it") -> tqdm.tqdm:
  """Wrap `iterable` in a tqdm bar on stderr, disabled unless stderr is a TTY."""
  return tqdm.tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr,
                   disable=not sys.stderr.isatty(), dynamic_ncols=True, leave=False)
