"""Shared set-up of the SDK tests: the in-memory fake plugins are importable as ``fake_plugins``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
