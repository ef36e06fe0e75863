"""Per-step loss terms of a run: `losses.csv` in the run directory and TensorBoard scalars."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from avalanche.core import SupervisedPlugin
from torch import Tensor

from ..io import atomic_write_text

COLUMNS = ("experience", "phase", "epoch", "step", "term", "value")


class LossLog(SupervisedPlugin):
    """Logs the total loss and every recorded term of each optimisation step.

    One row per (step, term): experience (1-based), phase ("train" for Avalanche's iterations, or a
    method's own phase such as PAD's "stage1"), epoch (1-based), step (counted per phase over the
    run), term, value. The file is rewritten atomically at the end of every experience; on resume,
    rows of the experiences being trained again are dropped, and a resume inside an experience takes
    that experience's rows so far from the checkpoint (state_dict, the plugin state contract). `tb` is the run's Avalanche
    TensorboardLogger (tags `loss/<phase>/<term>`, x = step) or None.
    """

    def __init__(self, path: Path, *, tb: Any = None):
        super().__init__()
        self.path, self.tb = Path(path), tb
        self.rows: list[dict] = []
        self.steps: dict[str, int] = {}
        self.experience: int | None = None  # 1-based, while an experience trains

    def before_training_exp(self, strategy, **kwargs):
        first = self.experience = strategy.exp_index + 1
        self.rows = [r for r in self._read() if int(r["experience"]) < first]
        self.steps = {}
        for r in self.rows:
            self.steps[r["phase"]] = max(self.steps.get(r["phase"], 0), int(r["step"]))

    def after_training_iteration(self, strategy, **kwargs):
        self.log(strategy, "train", strategy.loss)

    def state_dict(self) -> dict:
        """Inside an experience: its rows so far and the step counters (not yet in losses.csv)."""
        if self.experience is None:
            return {}
        return {"experience": self.experience, "steps": dict(self.steps),
                "rows": [r for r in self.rows if int(r["experience"]) == self.experience]}

    def load_state_dict(self, state: dict) -> None:
        """After the experience's set-up was replayed: its rows replace the ones the replay logged."""
        if not state:
            return
        self.rows = [r for r in self.rows if int(r["experience"]) < state["experience"]] + list(state["rows"])
        self.steps = dict(state["steps"])

    def after_training_exp(self, strategy, **kwargs):
        self.experience = None
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, buf.getvalue())
        if self.tb is not None:
            self.tb.writer.flush()

    def log(self, strategy, phase: str, total: Tensor, epoch: int | None = None) -> None:
        """One step's rows; `epoch` (1-based) defaults to the strategy's current epoch."""
        step = self.steps[phase] = self.steps.get(phase, 0) + 1
        values = {"loss": float(total.detach()), **strategy.loss_terms}
        for term, value in values.items():
            self.rows.append({"experience": strategy.exp_index + 1, "phase": phase,
                              "epoch": epoch or strategy.epoch + 1,
                              "step": step, "term": term, "value": f"{value:.6g}"})
            if self.tb is not None:
                self.tb.log_single_metric(f"loss/{phase}/{term}", value, step)

    def _read(self) -> list[dict]:
        if not self.path.is_file():
            return []
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))
