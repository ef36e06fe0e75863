"""benchmarks/world_criteria.py loaded as a module (benchmarks/ is not a package)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "world_criteria.py"
_spec = importlib.util.spec_from_file_location("world_criteria", _PATH)
world_criteria = importlib.util.module_from_spec(_spec)
sys.modules["world_criteria"] = world_criteria  # dataclasses look their module up there
_spec.loader.exec_module(world_criteria)
