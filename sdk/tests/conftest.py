"""Shared set-up of the SDK tests: pytester for running the kit as a suite would."""

from __future__ import annotations

import sys
from pathlib import Path

pytest_plugins = ["pytester"]

sys.path.insert(0, str(Path(__file__).parent))
