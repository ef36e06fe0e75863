"""Sweep specs: a YAML of benchmarks x strategies x profiles x grid x seeds, checked and expanded into runs.

    benchmarks: [synth]                      # required
    strategies: [pad]                        # required
    seeds: [0, 1, 2]                         # default [0]
    profiles: [tiny]                         # default: the benchmark's default profile
    set: {benchmark.data_root: .cache/synth} # fixed --set overrides for every run
    grid: {strategy.texkd_weight: [0.1, 0.5, 1.0, 2.0]}
    resources: {cpus: 1, gpus: 0}            # per run

Every run's config is resolved (layers, types, cross-field checks) before anything starts, so a bad
value is reported as one line naming the run and the key.
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import apply_sets, flatten, layered_config, load_yaml
from ..errors import UserError

SPEC_KEYS = ("benchmarks", "strategies", "seeds", "profiles", "set", "grid", "resources")
RESOURCE_KEYS = ("cpus", "gpus")
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


@dataclass(frozen=True)
class Resources:
    """What one run asks Ray for; torch uses `threads` (whole CPUs, at least one)."""

    cpus: float = 1
    gpus: float = 0

    @property
    def threads(self) -> int:
        return max(1, math.floor(self.cpus))


@dataclass
class SweepRun:
    """One run of a sweep: its name, what it varies and its resolved config."""

    name: str
    benchmark: str
    strategy: str
    profile: str | None
    seed: int
    grid: dict[str, Any]
    config: dict = field(repr=False)

    @property
    def config_sha256(self) -> str:
        """Digest of the resolved config: a finished run is reused only if this is unchanged."""
        return hashlib.sha256(json.dumps(self.config, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class SweepSpec:
    path: Path
    benchmarks: list[str]
    strategies: list[str]
    seeds: list[int]
    profiles: list[str | None]
    sets: dict[str, Any]
    grid: dict[str, list[Any]]
    resources: Resources

    @property
    def name(self) -> str:
        return self.path.stem

    def expand(self) -> list[SweepRun]:
        """Every run in a stable order (benchmark, strategy, profile, grid values, seed), configs resolved."""
        runs: list[SweepRun] = []
        keys = list(self.grid)
        labels = _short_keys(keys)
        for bench, strat, profile in itertools.product(self.benchmarks, self.strategies, self.profiles):
            layered = self._layered(bench, strat, profile)
            for values in itertools.product(*(self.grid[k] for k in keys)):
                point = dict(zip(keys, values))
                for seed in self.seeds:
                    parts = [strat, bench] + ([profile.replace(",", "+")] if profile else [])
                    parts += [f"{labels[k]}={_fmt_value(v)}" for k, v in point.items()] + [f"s{seed}"]
                    name = _UNSAFE.sub("_", "-".join(parts))
                    runs.append(SweepRun(name, bench, strat, profile, seed, dict(point),
                                         self._resolve(name, layered, seed, point)))
        _check_unique(runs, self.path)
        return runs

    def _layered(self, bench: str, strat: str, profile: str | None) -> dict:
        try:
            return layered_config(benchmark=bench, strategy=strat, profile=profile)
        except UserError as e:
            raise UserError(f"{self.path}: {strat} on {bench}{f' (profile {profile})' if profile else ''}: {e}") from None

    def _resolve(self, name: str, layered: dict, seed: int, point: dict[str, Any]) -> dict:
        """The run's config: a copy of its layered config with the spec's sets, the grid point and the seed
        (as resolve_config would make it, without reading the files again)."""
        sets = {**self.sets, **point, "seed": seed}
        if self.resources.gpus > 0:
            sets.setdefault("device", "cuda")
        try:
            cfg = apply_sets(copy.deepcopy(layered), sets)
        except UserError as e:
            raise UserError(f"{self.path}: run {name}: {e}") from None
        if str(cfg["device"]).startswith("cuda") and self.resources.gpus <= 0:
            raise UserError(f"{self.path}: run {name} uses device {cfg['device']} but resources.gpus is 0; "
                            "set resources.gpus (e.g. 1) or device: cpu")
        return cfg


def load_spec(path: str | Path) -> SweepSpec:
    """Read and check a spec file (not yet the run configs: see SweepSpec.expand)."""
    path = Path(path)
    raw = load_yaml(path)
    unknown = [k for k in raw if k not in SPEC_KEYS]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), SPEC_KEYS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise UserError(f"{path}: unknown key '{unknown[0]}'{hint} (valid keys: {', '.join(SPEC_KEYS)})")
    sets = flatten(_mapping(raw, "set", path))
    grid = _grid(raw, path)
    for key in ("seed", *sets):
        if key in grid:
            where = "seeds" if key == "seed" else "set"
            raise UserError(f"{path}: grid key '{key}' is also given in {where}; give it in one place")
    if "seed" in sets:
        raise UserError(f"{path}: set.seed: list the seeds under 'seeds' instead")
    return SweepSpec(
        path=path,
        benchmarks=_names(raw, "benchmarks", path, required=True),
        strategies=_names(raw, "strategies", path, required=True),
        seeds=_seeds(raw, path),
        profiles=_names(raw, "profiles", path, required=False) or [None],
        sets=sets,
        grid=grid,
        resources=_resources(raw, path),
    )


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _names(raw: dict, key: str, path: Path, *, required: bool) -> list[str]:
    if raw.get(key) is None:
        if required:
            raise UserError(f"{path}: '{key}' is missing; list at least one (`pad-bench list` names them)")
        return []
    values = _as_list(raw[key])
    bad = next((v for v in values if not isinstance(v, str) or not v), None)
    if bad is not None or not values:
        raise UserError(f"{path}: '{key}' must be a non-empty list of names, got {raw[key]!r}")
    _no_repeats(values, key, path)
    return values


def _seeds(raw: dict, path: Path) -> list[int]:
    values = _as_list(raw.get("seeds", [0]))
    if not values or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in values):
        raise UserError(f"{path}: 'seeds' must be a non-empty list of non-negative integers, got {raw.get('seeds')!r}")
    _no_repeats(values, "seeds", path)
    return values


def _mapping(raw: dict, key: str, path: Path) -> dict:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"{path}: '{key}' must be a mapping of dotted config keys, got {type(value).__name__}")
    return value


def _grid(raw: dict, path: Path) -> dict[str, list[Any]]:
    if "grid" not in raw:
        return {}
    grid = _mapping(raw, "grid", path)
    if not grid:
        raise UserError(f"{path}: 'grid' is empty; give it a key with a list of values "
                        "(e.g. strategy.texkd_weight: [0.1, 0.5]) or drop it")
    out: dict[str, list[Any]] = {}
    for key, values in flatten(grid).items():
        if not isinstance(values, list) or not values:
            raise UserError(f"{path}: grid key '{key}' needs a non-empty list of values, got {values!r}")
        _no_repeats(values, f"grid.{key}", path)
        out[key] = values
    return out


def _resources(raw: dict, path: Path) -> Resources:
    res = _mapping(raw, "resources", path)
    unknown = [k for k in res if k not in RESOURCE_KEYS]
    if unknown:
        raise UserError(f"{path}: unknown resources key '{unknown[0]}' (valid: {', '.join(RESOURCE_KEYS)})")
    cpus, gpus = res.get("cpus", 1), res.get("gpus", 0)
    for key, value, low in (("cpus", cpus, 0), ("gpus", gpus, -1)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > low:
            need = "a positive number" if key == "cpus" else "a number >= 0"
            raise UserError(f"{path}: resources.{key} must be {need}, got {value!r}")
    return Resources(cpus=cpus, gpus=gpus)


def _no_repeats(values: list, key: str, path: Path) -> None:
    seen: list = []
    for v in values:
        if v in seen:
            raise UserError(f"{path}: '{key}' lists {v!r} twice")
        seen.append(v)


def _short_keys(keys: list[str]) -> dict[str, str]:
    """The last part of each dotted key in run names, the whole key where two keys share it."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last)}


def _fmt_value(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(_fmt_value(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _check_unique(runs: list[SweepRun], path: Path) -> None:
    first: dict[str, SweepRun] = {}
    for run in runs:
        other = first.setdefault(run.name, run)
        if other is not run:
            raise UserError(f"{path}: two runs get the name '{run.name}' ({other.grid} and {run.grid}); "
                            "make the grid values distinguishable")
