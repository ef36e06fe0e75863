"""The run directory: results/<run>/{config.yaml, manifest.csv, metrics.csv, summary.json, run.log,
checkpoints/, plots/, tb/}. Every file is written atomically; nothing is silently overwritten."""
from __future__ import annotations

import csv
import io
import subprocess
from pathlib import Path

import yaml

from ..errors import UserError
from ..io import atomic_write_json, atomic_write_text
from ..paths import PROJECT_ROOT

METRIC_COLUMNS = ("step", "trained_domain", "eval_domain", "eval_set", "mAP", "mINP", "R1", "R5", "R10")
# Values are percentages (0-100); step 0 is the initial model, before any training.
RUN_KEYS = ("seed", "benchmark", "protocol", "strategy", "model", "train", "profile")


class RunStore:
    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def create(cls, path: Path, resume: bool) -> "RunStore":
        """Open a run directory: a new one, or with resume=True an existing one."""
        path = Path(path)
        exists = (path / "config.yaml").exists()
        if exists and not resume:
            raise UserError(f"run directory {path} already exists; pass --resume to continue it "
                            f"or choose another --name")
        if resume and not exists:
            raise UserError(f"cannot resume: {path} has no config.yaml (start it without --resume)")
        (path / "checkpoints").mkdir(parents=True, exist_ok=True)
        return cls(path)

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def write_config(self, cfg: dict) -> None:
        atomic_write_text(self.path / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))

    def read_config(self) -> dict:
        return yaml.safe_load((self.path / "config.yaml").read_text())

    def check_same_run(self, cfg: dict) -> None:
        """On resume the settings that shape results must not change."""
        old = self.read_config()
        for key in RUN_KEYS:
            if old.get(key) != cfg.get(key):
                raise UserError(f"cannot resume {self.path}: setting '{key}' differs from the stored "
                                f"config.yaml; resume with the original arguments")

    def write_manifest(self, manifest) -> None:
        atomic_write_text(self.path / "manifest.csv", manifest.to_csv())

    def write_metrics(self, rows: list[dict]) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{r[k]:.4f}" if isinstance(r[k], float) else r[k]) for k in METRIC_COLUMNS})
        atomic_write_text(self.path / "metrics.csv", buf.getvalue())

    def write_summary(self, summary: dict) -> None:
        atomic_write_json(self.path / "summary.json", summary)


def environment_info() -> dict:
    """Package versions and the git commit, recorded in config.yaml."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for pkg in ("torch", "torchvision", "avalanche-lib", "open_clip_torch", "numpy", "pad-bench"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                                text=True, timeout=5).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=PROJECT_ROOT, capture_output=True,
                                    text=True, timeout=5).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {"versions": versions, "git_commit": commit, "git_dirty": dirty}
