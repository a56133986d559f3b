"""`python -m clinical_t5.evaluate`: the same as `clinical-t5 evaluate`."""

import sys

from clinical_t5.train import cli

if __name__ == "__main__":
  sys.exit(cli.module_main("evaluate"))
