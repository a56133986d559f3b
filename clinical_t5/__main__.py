"""`python -m clinical_t5` runs the `clinical-t5` command line."""

import sys

from clinical_t5.cli import main

sys.exit(main())
