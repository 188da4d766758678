"""``python -m asklepios_ophnet``: the plugin's command line."""

from __future__ import annotations

import sys

from asklepios_ophnet.cli import main

sys.exit(main())
