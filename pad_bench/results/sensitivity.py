"""Sensitivity of the final results to one swept config key.

For each key: Seen-Avg mAP, Unseen-Avg mAP and mean forgetting (mAP) against the key's value,
mean ± std over seeds, one line per strategy (and per value of the other swept keys, if any);
written as sensitivity-<key>.png/.svg and the plotted numbers as sensitivity-<key>.csv.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import UserError
from ..io import atomic_write_text
from .plots import save_figure
from .runs import Run, mean_std

PANELS = (("Seen-Avg mAP", "seen_avg_final"), ("Unseen-Avg mAP", "unseen_avg_final"),
          ("Forgetting (mAP)", "forgetting_mean"))


@dataclass
class Point:
    """One line's value at one x: mean and std over its runs (seeds) per panel."""

    line: str
    x: Any
    n: int
    stats: dict[str, tuple[float | None, float | None]]


def sensitivity_points(runs: Sequence[Run], key: str, other_keys: Sequence[str] = ()) -> list[Point]:
    """Points per (line, value) in order of first appearance, values sorted when they are numbers."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        value = _value(run, key)
        others = ", ".join(f"{k}={_value(run, k)}" for k in other_keys)
        line = run.label + (f" [{others}]" if others else "")
        groups.setdefault((line, json.dumps(value, default=str)), []).append(run)
    points = [Point(line, json.loads(x), len(rs), {field: mean_std([r.summary["mAP"][field] for r in rs])
                                                   for _, field in PANELS})
              for (line, x), rs in groups.items()]
    if all(_is_number(p.x) for p in points):
        points.sort(key=lambda p: p.x)
    return points


def plot_sensitivity(runs: Sequence[Run], keys: Sequence[str], out_dir: str | Path) -> list[Path]:
    """Figure and CSV per key into out_dir; return the files written."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    out_dir = Path(out_dir)
    written: list[Path] = []
    for key in keys:
        points = sensitivity_points(runs, key, [k for k in keys if k != key])
        stem = out_dir / f"sensitivity-{key}"
        atomic_write_text(stem.with_name(stem.name + ".csv"), _csv(points))
        written.append(stem.with_name(stem.name + ".csv"))
        lines = list(dict.fromkeys(p.line for p in points))
        numeric = all(_is_number(p.x) for p in points)
        xs = sorted({p.x for p in points}) if numeric else list(dict.fromkeys(str(p.x) for p in points))
        fig = Figure(figsize=(4.2 * len(PANELS), 3.6), layout="constrained")
        axes = fig.subplots(1, len(PANELS))
        palette = colormaps["tab10"].colors
        for ax, (title, field) in zip(axes, PANELS):
            for li, line in enumerate(lines):
                mine = [p for p in points if p.line == line and p.stats[field][0] is not None]
                x = [p.x if numeric else xs.index(str(p.x)) for p in mine]
                mean = [p.stats[field][0] for p in mine]
                std = [p.stats[field][1] or 0.0 for p in mine]
                ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, color=palette[li % len(palette)], label=line)
            if numeric and _log_scale(xs):
                ax.set_xscale("log")
            ax.set_xticks(xs if numeric else range(len(xs)), [_fmt(x) for x in xs])
            ax.minorticks_off()
            ax.set_xlabel(key)
            ax.set_title(title)
            ax.grid(alpha=0.3)
        n = sorted({p.n for p in points})
        fig.suptitle(f"sensitivity to {key} (mean ± std over {'/'.join(map(str, n))} seeds)")
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=min(3, len(lines)))
        written += save_figure(fig, stem)
    return written


def _value(run: Run, key: str) -> Any:
    node: Any = run.config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise UserError(f"run {run.name} has no config key '{key}' to plot sensitivity against")
        node = node[part]
    return node


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _log_scale(xs: Sequence[float]) -> bool:
    """Log axis for positive values spanning at least a factor of 10 (weights, learning rates)."""
    return len(xs) > 2 and min(xs) > 0 and max(xs) / min(xs) >= 10


def _fmt(x: Any) -> str:
    return f"{x:g}" if _is_number(x) and not math.isnan(x) else str(x)


def _csv(points: Sequence[Point]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["line", "value", "n"] + [f"{field}_{s}" for _, field in PANELS for s in ("mean", "std")])
    for p in points:
        w.writerow([p.line, p.x, p.n] + ["" if v is None else round(v, 4) for _, f in PANELS for v in p.stats[f]])
    return buf.getvalue()
