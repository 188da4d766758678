"""Run the command line as ``python -m asklepios``."""

import sys

from asklepios.cli import main

sys.exit(main())
