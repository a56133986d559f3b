"""`python -m clinical_t5.train`: the same as `clinical-t5 train`."""

import sys

from clinical_t5.train import cli

if __name__ == "__main__":
  sys.exit(cli.module_main("train"))
