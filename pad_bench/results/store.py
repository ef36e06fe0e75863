"""The run directory: results/<run>/{config.yaml, manifest.csv, fingerprint.csv, metrics.csv,
summary.json, diagnostics.csv, run.log, checkpoints/, plots/, tb/, .lock}. Every file is written atomically; nothing
is silently overwritten.

Opening a run directory creates it exclusively and takes its lock (held for the whole run), so two
runs never share one. A start-up error before config.yaml exists removes a directory it created.
"""
from __future__ import annotations

import csv
import io
import logging
import shutil
import subprocess
from pathlib import Path

import yaml

from ..errors import UserError
from ..io import TEMP_SUFFIX, atomic_write_json, atomic_write_text, remove_stale_temp_files
from ..paths import PROJECT_ROOT
from ..yamlio import read_yaml
from .lock import LOCK_NAME, RunLock

log = logging.getLogger("pad_bench")

METRIC_COLUMNS = ("step", "trained_domain", "eval_domain", "eval_set", "mAP", "mINP", "R1", "R5", "R10")
# Values are percentages (0-100); step 0 is the initial model, before any training.
RUN_KEYS = ("seed", "benchmark", "protocol", "strategy", "model", "train", "profile")


# What a run writes before its config.yaml: a directory holding only these is half-made (killed at
# start-up) and is started afresh.
STARTUP_FILES = ("manifest.csv", "fingerprint.csv", "checkpoints", "run.log", LOCK_NAME)
# Settings of the benchmark section that may change between start and resume (data moved elsewhere).
RELOCATABLE = ("data_root",)


def check_run_name(name: str) -> str:
    """A run name is one folder name: no path separators, not '.' or '..' (it stays inside --out)."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise UserError(f"--name {name!r} must be a plain folder name (no '/', not starting with '.'); "
                        f"use --out to choose where run directories go")
    return name


class RunStore:
    """One run directory. Without a lock (plain construction) it is read-only use: export, plots."""

    def __init__(self, path: Path, lock: RunLock | None = None, created: bool = False):
        self.path = Path(path)
        self.lock, self.created = lock, created
        self.resuming = False

    @classmethod
    def open(cls, path: Path, resume: bool) -> "RunStore":
        """Create path exclusively (or, with resume, reuse it) and lock it for this process.

        `resuming` tells whether there is a run to continue: --resume on a directory without
        config.yaml (killed at start-up, or never started) starts the run instead, and says so."""
        path = Path(path)
        created = False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir()
            created = True
        except FileExistsError:
            if not path.is_dir():
                raise UserError(f"{path} exists and is not a directory; choose another --name") from None
            _refuse_foreign(path)  # before the lock: a refused folder gets no lock file
        except OSError as e:
            raise UserError(f"cannot create run directory {path}: {e.strerror}; choose a writable --out") from None
        store = cls(path, RunLock.acquire(path), created)
        try:
            store._check_contents(resume)
        except BaseException:
            store.lock.release()
            raise
        return store

    def _check_contents(self, resume: bool) -> None:
        path = self.path
        if (path / "config.yaml").exists():
            if not resume:
                raise UserError(f"run directory {path} already exists; pass --resume to continue it "
                                f"or choose another --name")
            self.resuming = True
            for tmp in remove_stale_temp_files(path):
                log.info("removed stale temp file %s", tmp)
            return
        _refuse_foreign(path)
        if resume and not self.created:
            print(f"{path} has no config.yaml (the run never got past start-up): starting it", flush=True)
        for p in path.iterdir():
            if p.name != LOCK_NAME:
                shutil.rmtree(p) if p.is_dir() else p.unlink()

    def abandon(self) -> None:
        """After a start-up error: remove the directory if this process created it, release the lock."""
        if self.created and not (self.path / "config.yaml").exists():
            shutil.rmtree(self.path, ignore_errors=True)
        self.close()

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def write_config(self, cfg: dict) -> None:
        atomic_write_text(self.path / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))

    def read_config(self) -> dict:
        return read_yaml(self.path / "config.yaml", "run config")

    def check_same_run(self, cfg: dict) -> None:
        """On resume the settings that shape results must not change."""
        old = self.read_config()
        for key in RUN_KEYS:
            if _comparable(old, key) != _comparable(cfg, key):
                raise UserError(f"cannot resume {self.path}: setting '{key}' differs from the stored "
                                f"config.yaml; resume with the original arguments")

    def write_manifest(self, manifest) -> None:
        atomic_write_text(self.path / "manifest.csv", manifest.to_csv())

    def write_fingerprint(self, text: str) -> None:
        atomic_write_text(self.path / "fingerprint.csv", text)

    def read_fingerprint(self) -> str | None:
        path = self.path / "fingerprint.csv"
        return path.read_text(encoding="utf-8") if path.is_file() else None

    def write_metrics(self, rows: list[dict]) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{r[k]:.4f}" if isinstance(r[k], float) else r[k]) for k in METRIC_COLUMNS})
        atomic_write_text(self.path / "metrics.csv", buf.getvalue())

    def write_diagnostics(self, rows: list[dict]) -> None:
        """diagnostics.csv: the long table of pad_bench.metrics.diagnostics (docs/metrics.md#6-diagnostics)."""
        from ..metrics.diagnostics import DIAGNOSTIC_COLUMNS

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=DIAGNOSTIC_COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({**r, "value": f"{r['value']:.6g}"})
        atomic_write_text(self.path / "diagnostics.csv", buf.getvalue())

    def write_summary(self, summary: dict) -> None:
        atomic_write_json(self.path / "summary.json", summary)


def _refuse_foreign(path: Path) -> None:
    """A folder that is neither a run nor a run half-made at start-up is not ours to write into."""
    if (path / "config.yaml").exists():
        return
    leftovers = [p for p in path.iterdir() if p.name not in STARTUP_FILES and not p.name.endswith(TEMP_SUFFIX)]
    if leftovers:
        raise UserError(f"{path} already exists and holds {leftovers[0].name} but no config.yaml: it is "
                        f"not a pad-bench run; choose another --name")


def _comparable(cfg: dict, key: str):
    value = cfg.get(key)
    if key == "benchmark" and isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in RELOCATABLE}
    if key == "train" and isinstance(value, dict):  # a run from before train.precision existed
        return {**value, "precision": recorded_precision(cfg)}
    return value


def recorded_precision(cfg: dict) -> str:
    """train.precision of a stored config; a run from before the setting existed autocast to bf16 on
    CUDA and ran fp32 on CPU."""
    recorded = (cfg.get("train") or {}).get("precision")
    if recorded is not None:
        return str(recorded)
    return "bf16" if str(cfg.get("device", "cpu")).startswith("cuda") else "fp32"


# The hardware that decides the rounding: another one breaks bitwise identity with an uninterrupted run.
HARDWARE_KEYS = ("cpu", "cpu_capability", "threads", "gpu")


def hardware_change(stored: dict | None, now: dict) -> str | None:
    """What differs between the hardware a run started on and this one ('cpu_capability AVX512 -> AVX2'),
    or None (also for a run that recorded none)."""
    if not isinstance(stored, dict):
        return None
    changed = [f"{k} {stored.get(k)} -> {now.get(k)}" for k in HARDWARE_KEYS if stored.get(k) != now.get(k)]
    return ", ".join(changed) or None


def hardware_info(device: str) -> dict:
    """What the numbers depend on besides the code: the CPU and the kernel level torch dispatches to
    (AVX-512 and AVX2 kernels round differently), threads, the GPU and its software, the determinism flags."""
    import os
    import platform

    import torch

    cuda = str(device).startswith("cuda") and torch.cuda.is_available()
    return {
        "cpu": _cpu_model() or platform.processor() or None,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "aten_cpu_capability": os.environ.get("ATEN_CPU_CAPABILITY"),
        "threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(torch.device(device)) if cuda else None,
        "cuda_driver": _nvidia_driver() if cuda else None,
        "cuda": torch.version.cuda if cuda else None,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
    }


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        return None


def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0] if out else None


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
