"""Reading run directories and grouping runs (one group per strategy, model and settings) for comparison.

A run directory holds config.yaml (resolved config), metrics.csv (the long results table of
pad_bench.metrics.lifelong) and optionally summary.json. The lifelong summaries are recomputed
from metrics.csv, so tables and plots need nothing else.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from ..errors import UserError
from ..metrics.lifelong import UNION_LABEL, lifelong_summary, results_matrix
from .store import recorded_precision
from ..yamlio import read_yaml

if TYPE_CHECKING:
    import pandas as pd

SUMMARY_METRICS = ("mAP", "R1")
TEXT_COLUMNS = ("trained_domain", "eval_domain", "eval_set")
FOOTNOTE_MARKERS = ("†", "‡", "§", "¶", "#")


@dataclass
class Run:
    """One run directory, loaded; `summary[metric]` is lifelong_summary of metrics.csv."""

    path: Path
    name: str
    config: dict[str, Any]
    table: "pd.DataFrame"
    summary: dict[str, dict[str, Any]]

    @property
    def strategy(self) -> str:
        return str(self.config["strategy"]["name"])

    @property
    def model(self) -> str:
        return str(self.config["model"]["name"])

    @property
    def benchmark(self) -> str:
        return str(self.config["benchmark"]["name"])

    @property
    def domains(self) -> list[str]:
        return list(self.config["benchmark"]["domains"])

    @property
    def unseen(self) -> list[str]:
        return list(self.config["benchmark"].get("unseen") or [])

    @property
    def label(self) -> str:
        return f"{self.strategy} ({self.model})"

    @property
    def weights(self) -> str:
        """Where the backbone's initial weights came from: `random`, a file name, or `default` (unrecorded)."""
        value = (self.config.get("model") or {}).get("weights")
        return "default" if value is None else Path(str(value)).name

    @property
    def backbone(self) -> str:
        """The model and its initial weights, e.g. `resnet50 (resnet50-0676ba61.pth)`."""
        return self.model if self.weights == "default" else f"{self.model} ({self.weights})"

    @property
    def precision(self) -> str:
        return recorded_precision(self.config)

    @property
    def hardware(self) -> str | None:
        """The CPU model, its torch kernel level and the GPU, e.g. `AMD EPYC / AVX2 / no GPU`; None for a run
        recorded before config.yaml had a hardware block."""
        hw = self.config.get("hardware")
        if not isinstance(hw, dict):
            return None
        return f"{hw.get('cpu')} / {hw.get('cpu_capability')} / {hw.get('gpu') or 'no GPU'}"

    def recipe(self) -> dict[str, Any]:
        """The method's settings (strategy and train sections, flat), which seeds of one method share."""
        from ..config import flatten

        flat = flatten({"strategy": self.config.get("strategy") or {}, "train": self.config.get("train") or {}})
        recipe = {k: v for k, v in flat.items() if k not in RECIPE_IGNORED}
        if self.weights != "default":  # a random init and ImageNet weights are different methods' rows
            recipe["model.weights"] = self.weights
        return recipe

    @property
    def trained_union(self) -> bool:
        """True when one step trained every domain together."""
        return bool((self.table["trained_domain"] == UNION_LABEL).any())

    @property
    def last_step(self) -> int:
        return int(self.table["step"].max()) if len(self.table) else -1

    @property
    def total_steps(self) -> int:
        """Steps of a finished run: one per training domain, or one when it trained their union."""
        return 1 if self.trained_union else len(self.domains)

    @property
    def finished(self) -> bool:
        return self.last_step >= self.total_steps

    @property
    def seed(self) -> Any:
        return self.config.get("seed")

    def nan_results(self) -> list[str]:
        """'step S: domain metric' for every NaN result in metrics.csv (a run that diverged)."""
        metrics = [c for c in self.table.columns if c not in TEXT_COLUMNS and c != "step"]
        return [f"step {int(row['step'])}: {row['eval_domain']} {m}" for _, row in self.table.iterrows()
                for m in metrics if row[m] != row[m]]

    def step_labels(self) -> dict[int, str]:
        """Step -> the domain trained in it ("init" for step 0, UNION_LABEL for a step that trained every domain)."""
        steps = self.table.drop_duplicates("step").sort_values("step")
        return {int(s): d or "init" for s, d in zip(steps["step"], steps["trained_domain"])}

    def settings(self) -> dict[str, Any]:
        """The settings that must match for two runs to be comparable, as flat dotted keys."""
        protocol = self.config.get("protocol") or {}
        return {
            "benchmark.name": self.benchmark,
            "benchmark.domains": self.domains,
            "benchmark.unseen": self.unseen,
            **{f"protocol.{k}": v for k, v in sorted(protocol.items())},
        }


def load_run(run_dir: str | Path) -> Run:
    """Read config.yaml, metrics.csv and (if present) summary.json; UserError when a file is missing or bad."""
    import pandas as pd

    run_dir = Path(run_dir)
    for required in ("config.yaml", "metrics.csv"):
        if not (run_dir / required).is_file():
            raise UserError(f"run directory {run_dir} has no {required}; pass the folder of a finished run")
    try:
        config = read_yaml(run_dir / "config.yaml", "run config") or {}
        table = pd.read_csv(run_dir / "metrics.csv", dtype={c: str for c in TEXT_COLUMNS})
        saved = _read_json(run_dir / "summary.json")
    except pd.errors.EmptyDataError:
        raise UserError(f"{run_dir / 'metrics.csv'} is empty: the run has no results yet") from None
    except (pd.errors.ParserError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"run directory {run_dir} has an unreadable file: {e}") from None
    if table.empty or "step" not in table.columns:
        raise UserError(f"{run_dir / 'metrics.csv'} has no result rows yet")
    for key in ("benchmark.name", "benchmark.domains", "strategy.name", "model.name"):
        _require(config, key, run_dir)
    for col in TEXT_COLUMNS:
        if col in table.columns:
            table[col] = table[col].fillna("")
    domains = list(config["benchmark"]["domains"])
    try:
        summary = {m: lifelong_summary(table, domains, metric=m) for m in SUMMARY_METRICS}
    except UserError as e:
        raise UserError(f"{run_dir / 'metrics.csv'}: {e}") from None
    return Run(run_dir, str(saved.get("run") or run_dir.name), config, table, summary)


def missing_rows(table: "pd.DataFrame") -> list[str]:
    """'step S: eval_domain (eval_set)' for every result a complete table would have but this one lacks
    (every step from 0 to the last scores every evaluation set)."""
    pairs = sorted(set(zip(table["eval_domain"], table["eval_set"])))
    have = set(zip(table["step"].astype(int), table["eval_domain"], table["eval_set"]))
    return [f"step {s}: {d} ({e})" for s in range(int(table["step"].max()) + 1) for d, e in pairs
            if (s, d, e) not in have]


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _require(config: dict[str, Any], dotted: str, run_dir: Path) -> None:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise UserError(f"{run_dir / 'config.yaml'} has no '{dotted}'; it is not a pad-bench run config")
        node = node[part]


def setting_differences(ref: Run, other: Run) -> list[tuple[str, Any, Any]]:
    """(key, ref value, other value) for every comparability setting that differs."""
    a, b = ref.settings(), other.settings()
    missing = "<unset>"
    return [(k, a.get(k, missing), b.get(k, missing)) for k in dict.fromkeys([*a, *b]) if a.get(k, missing) != b.get(k, missing)]


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample std (ddof=1) of per-seed values; std None for one value, both None if any is None."""
    if not values or any(v is None for v in values):
        return None, None
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else None


@dataclass
class RunGroup:
    """Runs (seeds) of one strategy and model with identical settings.

    `marker` is "" for the settings of the reference run (the first one); groups with other
    settings (only possible with force) get a footnote marker and `differences` from the reference.
    """

    label: str
    runs: list[Run]
    marker: str = ""
    differences: list[tuple[str, Any, Any]] = field(default_factory=list)

    @property
    def display_label(self) -> str:
        return self.label + self.marker

    @property
    def trained_union(self) -> bool:
        return self.runs[0].trained_union

    def stat(self, get: Callable[[Run], float | None]) -> tuple[float | None, float | None]:
        return mean_std([get(r) for r in self.runs])

    def per_seed(self, get: Callable[[Run], float | None]) -> dict[int, float]:
        """{seed: value}, averaged where runs share a seed; runs without a value are left out."""
        by_seed: dict[int, list[float]] = {}
        for run in self.runs:
            value = get(run)
            if value is not None:
                by_seed.setdefault(run.seed, []).append(float(value))
        return {s: float(np.mean(v)) for s, v in by_seed.items()}

    def series(self, get: Callable[[Run], Sequence[float | None]]) -> tuple[np.ndarray, np.ndarray]:
        """Element-wise mean and std over runs of per-step lists (NaN where missing; std NaN for one run)."""
        lists = [[np.nan if v is None else v for v in get(r)] for r in self.runs]
        width = max(len(v) for v in lists)
        return _mean_std_stack(np.array([v + [np.nan] * (width - len(v)) for v in lists], dtype=float))

    def matrix(self, metric: str = "mAP", eval_set: str = "seen") -> tuple["pd.DataFrame", "pd.DataFrame"]:
        """Mean and std over runs of the step x domain results matrix."""
        import pandas as pd

        mats = [results_matrix(r.table, metric, eval_set) for r in self.runs]
        steps = sorted(set().union(*(m.index for m in mats)))
        cols = list(dict.fromkeys(c for m in mats for c in m.columns))
        mean, std = _mean_std_stack(np.stack([m.reindex(index=steps, columns=cols).to_numpy() for m in mats]))
        return pd.DataFrame(mean, index=steps, columns=cols), pd.DataFrame(std, index=steps, columns=cols)


def _mean_std_stack(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    std = stack.std(axis=0, ddof=1) if len(stack) > 1 else np.full(stack.shape[1:], np.nan)
    return stack.mean(axis=0), std


def group_runs(runs: Sequence[Run]) -> list[RunGroup]:
    """Group runs by (strategy, model, method settings, protocol settings) in order of first appearance.

    Runs of one strategy whose strategy/train settings differ (a preset, a switch, a swept value) are
    separate rows, each labelled with its values of the settings that vary among them;
    non-reference protocol settings are marked."""
    if not runs:
        raise ValueError("group_runs needs at least one run")
    ref = runs[0]
    signatures: dict[str, str] = {}  # settings signature -> footnote marker
    varying = _varying_recipe_keys(runs)
    groups: dict[tuple[str, str], RunGroup] = {}
    for run in runs:
        sig = json.dumps(run.settings(), sort_keys=True, default=str)
        if sig not in signatures:
            signatures[sig] = _marker(len(signatures) - 1) if signatures else ""
        recipe = run.recipe()
        diff = [f"{k}={recipe.get(k)}" for k in varying[run.label]]
        label = f"{run.label} [{', '.join(diff)}]" if diff else run.label
        key = (label, sig)
        if key not in groups:
            groups[key] = RunGroup(label, [], signatures[sig], setting_differences(ref, run))
        groups[key].runs.append(run)
    return list(groups.values())


def check_unique_seeds(groups: Sequence[RunGroup]) -> None:
    """UserError when two runs of one group share a seed: they would count as two seeds."""
    for g in groups:
        seen: dict[Any, Run] = {}
        for run in g.runs:
            if run.seed in seen:
                raise UserError(f"runs '{seen[run.seed].name}' and '{run.name}' are both seed {run.seed} of "
                                f"{g.label}; pass each seed once")
            seen[run.seed] = run


def _varying_recipe_keys(runs: Sequence[Run]) -> dict[str, list[str]]:
    """Per label (strategy and model), the recipe keys whose values differ among its runs."""
    recipes: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        recipes.setdefault(run.label, []).append(run.recipe())
    return {label: [k for k in sorted(set().union(*rs)) if len({json.dumps(r.get(k), default=str) for r in rs}) > 1]
            for label, rs in recipes.items()}


# speed only, or (precision) how it ran rather than what: a row mixing precisions is warned about instead
RECIPE_IGNORED = ("train.num_workers", "train.eval_batch_size", "train.data_path", "train.cache_dir", "train.precision")


def _marker(i: int) -> str:
    n = len(FOOTNOTE_MARKERS)
    return FOOTNOTE_MARKERS[i % n] * (i // n + 1)


def union_in_order(lists: Sequence[Sequence[str]]) -> list[str]:
    """All names of the lists, each once, in order of first appearance."""
    return list(dict.fromkeys(name for names in lists for name in names))
