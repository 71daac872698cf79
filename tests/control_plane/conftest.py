"""The Fly test kit (``tests/fly_engine/fly_testkit.py``) is importable here as ``fly_testkit``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fly_engine"))
