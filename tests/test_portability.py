"""The golden outputs and a bitwise resume, again under torch's generic kernels (ATEN_CPU_CAPABILITY=default),
so that a pin made with AVX-512 or AVX2 kernels, or a determinism claim that holds only with them,
fails on the machine that made it rather than on a user's. The kernel level is read once, when torch
is imported: hence a subprocess. The full-size models are left out to keep the suite fast."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKS = ("tests/test_models_golden.py::test_output_matches_its_pin",
          "tests/test_run.py::test_killed_run_resumes_to_identical_metrics")


@pytest.mark.slow
def test_golden_and_resume_hold_with_generic_kernels():
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                           "-k", "tiny or killed_run", *CHECKS], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "4 passed" in done.stdout  # the three tiny models and the resume: none skipped or deselected
