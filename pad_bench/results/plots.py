"""Figures (PNG + SVG) comparing runs, or of one run, drawn from run directories only.

- curves:     mAP of each seen domain over the steps (one panel per domain, strategies overlaid)
- averages:   Seen-Avg and Unseen-Avg mAP over the steps
- forgetting: forgetting per domain and its mean (bars per strategy; skipped when undefined)
- heatmap:    the results matrix R[step][domain] of each strategy, annotated
Several runs of one strategy are averaged; the shading / error bars are ± one std over seeds.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from ..io import atomic_write
from ..metrics.lifelong import UNION_LABEL
from .runs import Run, RunGroup, group_runs, load_run, missing_rows, union_in_order

log = logging.getLogger("pad_bench")

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FORMATS = ("png", "svg")
DPI = 150
MAX_COLUMNS = 3


def plot_comparison(runs: Sequence[Run | str | Path], out_dir: str | Path) -> list[Path]:
    """Draw every comparison figure into out_dir; return the files written."""
    loaded = [r if isinstance(r, Run) else load_run(r) for r in runs]
    ctx = _Context.build(loaded)
    paths: list[Path] = []
    for name, draw in (("curves", _curves), ("averages", _averages), ("forgetting", _forgetting), ("heatmap", _heatmaps)):
        fig = draw(ctx)
        if fig is not None:
            paths += save_figure(fig, Path(out_dir) / name)
    return paths


def plot_run(run_dir: str | Path) -> list[Path]:
    """Draw one run's figures, its diagnostics' included, into run_dir/plots/ (warning when metrics.csv lacks
    rows); return the files written."""
    run = load_run(run_dir)
    missing = missing_rows(run.table)
    if missing:
        log.warning("%s looks truncated: %d result row(s) missing (first: %s); the plots show what is there",
                    Path(run_dir) / "metrics.csv", len(missing), missing[0])
    from .diagnostic_plots import plot_diagnostics

    return plot_comparison([run], Path(run_dir) / "plots") + plot_diagnostics(run_dir)


def save_figure(fig: "Figure", stem: Path) -> list[Path]:
    """Write stem.png and stem.svg atomically."""
    paths = []
    for ext in FORMATS:
        path = stem.parent / f"{stem.name}.{ext}"
        atomic_write(path, lambda tmp, ext=ext: fig.savefig(tmp, format=ext, dpi=DPI))
        paths.append(path)
    return paths


@dataclass
class _Context:
    """What every figure needs: groups, their colours and mean/std seen matrices, the step labels."""

    groups: list[RunGroup]
    colors: list[Any]
    seen: list[tuple["pd.DataFrame", "pd.DataFrame"]]
    domains: list[str]
    step_labels: dict[int, str]
    title: str

    @classmethod
    def build(cls, runs: list[Run]) -> "_Context":
        from matplotlib import colormaps

        groups = group_runs(runs)
        palette = colormaps["tab10"].colors
        # The x axis follows the sequential runs; runs that trained the union are drawn as flat reference lines.
        labels: dict[int, str] = {}
        for run in [r for r in runs if not r.trained_union] or runs:
            for step, name in run.step_labels().items():
                labels.setdefault(step, name)
        title = ", ".join(union_in_order([[r.benchmark] for r in runs]))
        return cls(
            groups=groups,
            colors=[palette[i % len(palette)] for i in range(len(groups))],
            seen=[g.matrix("mAP", "seen") for g in groups],
            domains=union_in_order([r.domains for r in runs]),
            step_labels=dict(sorted(labels.items())),
            title=f"{title}, run {runs[0].name}" if len(runs) == 1 else title,
        )

    def flat(self, g: RunGroup) -> bool:
        """Draw this group as a flat reference line: a run that trained the union next to sequential ones."""
        return g.trained_union and any(not other.trained_union for other in self.groups)

    def legend_label(self, g: RunGroup) -> str:
        return g.display_label + (f" (n={len(g.runs)})" if len(g.runs) > 1 else "")

    def step_axis(self, ax: "Axes", first_step: int = 0) -> None:
        steps = [s for s in self.step_labels if s >= first_step]
        if not steps:
            return
        ax.set_xticks(steps, [self.step_labels[s] for s in steps], rotation=30, ha="right", rotation_mode="anchor")
        ax.set_xlabel("after training step (domain trained)")
        ax.set_xlim(min(steps) - 0.3, max(steps) + 0.3)


def _figure(n_panels: int, panel_w: float, panel_h: float, sharey: bool = False, legend: bool = True) -> tuple["Figure", list["Axes"]]:
    from matplotlib.figure import Figure

    ncols = min(MAX_COLUMNS, n_panels)
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(panel_w * ncols, panel_h * nrows + (0.9 if legend else 0.4)), layout="constrained")
    axes = list(fig.subplots(nrows, ncols, squeeze=False, sharey=sharey).flat)
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _band(ax: "Axes", x: Sequence[float], mean: np.ndarray, std: np.ndarray, color: Any, label: str) -> None:
    """A mean curve with a ± std band where the std is defined."""
    ax.plot(x, mean, marker="o", markersize=4, color=color, label=label)
    if np.isfinite(std).any():
        ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)


def _flat(ax: "Axes", mean: float, std: float, color: Any, label: str) -> None:
    """The final value of a run that trained the union as a horizontal reference line (± std band)."""
    if not np.isfinite(mean):
        return
    ax.axhline(mean, color=color, linestyle=":", linewidth=1.8, label=f"{label}, final")
    if np.isfinite(std):
        ax.axhspan(mean - std, mean + std, color=color, alpha=0.15, linewidth=0)


def _shared_legend(fig: "Figure", axes: list["Axes"], ncols: int) -> None:
    """One legend below the panels, each label once."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=min(ncols, len(handles)), frameon=False)


def _curves(ctx: _Context) -> "Figure":
    fig, axes = _figure(len(ctx.domains), 4.2, 3.3, sharey=True)
    trained_at: dict[str, int] = {}
    for step, name in ctx.step_labels.items():
        for domain in ctx.domains if name == UNION_LABEL else [name]:
            trained_at.setdefault(domain, step)
    for i, (ax, domain) in enumerate(zip(axes, ctx.domains)):
        for g, color, (mean, std) in zip(ctx.groups, ctx.colors, ctx.seen):
            if domain not in mean.columns:
                continue
            if ctx.flat(g):
                _flat(ax, mean[domain].iloc[-1], std[domain].iloc[-1], color, ctx.legend_label(g))
            else:
                _band(ax, mean.index, mean[domain].to_numpy(), std[domain].to_numpy(), color, ctx.legend_label(g))
        if domain in trained_at:
            ax.axvline(trained_at[domain], color="0.45", linestyle="--", linewidth=1, label="step that trains the domain")
        ax.set_title(domain)
        ctx.step_axis(ax)
        ax.grid(alpha=0.3)
        if i % MAX_COLUMNS == 0:
            ax.set_ylabel("mAP (%)")
        ax.tick_params(axis="y", labelleft=True)
    fig.suptitle(f"Per-domain mAP over training steps\n{ctx.title}")
    _shared_legend(fig, axes, 4)
    return fig


def _averages(ctx: _Context) -> "Figure":
    fig, axes = _figure(2, 5.0, 3.6)
    panels = (("Seen-Avg (domains trained so far)", "seen_avg", 1), ("Unseen-Avg (unseen datasets)", "unseen_avg", 0))
    for ax, (title, key, first_step) in zip(axes, panels):
        for g, color in zip(ctx.groups, ctx.colors):
            mean, std = g.series(lambda r, key=key: r.summary["mAP"][key])
            if ctx.flat(g):
                _flat(ax, mean[-1], std[-1], color, ctx.legend_label(g))
            elif np.isfinite(mean).any():
                _band(ax, np.arange(first_step, first_step + len(mean)), mean, std, color, ctx.legend_label(g))
        if not ax.lines:
            ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes, color="0.4")
        ax.set_title(title)
        ax.set_ylabel("mAP (%)")
        ctx.step_axis(ax, first_step)
        ax.grid(alpha=0.3)
    fig.suptitle(f"Average mAP over training steps\n{ctx.title}")
    _shared_legend(fig, axes, 4)
    return fig


def _forgetting(ctx: _Context) -> "Figure | None":
    domains = union_in_order([list(r.summary["mAP"]["forgetting"] or {}) for g in ctx.groups for r in g.runs])
    if not domains:
        return None
    getters: list[Callable[[Run], float | None]] = [
        (lambda r, d=d: (r.summary["mAP"]["forgetting"] or {}).get(d)) for d in domains
    ] + [lambda r: r.summary["mAP"]["forgetting_mean"]]
    drawn = [(g, color) for g, color in zip(ctx.groups, ctx.colors) if not g.trained_union]
    fig, (ax,) = _figure(1, min(14.0, max(6.0, 2.0 + 0.45 * len(getters) * len(drawn))), 4.0)
    width = 0.8 / len(drawn)
    x = np.arange(len(getters))
    for i, (g, color) in enumerate(drawn):
        stats = [g.stat(get) for get in getters]
        means = np.array([np.nan if m is None else m for m, _ in stats])
        errs = np.array([np.nan if s is None else s for _, s in stats])
        xs = x - 0.4 + width * (i + 0.5)
        ax.bar(xs, means, width, yerr=errs, color=color, capsize=3, label=ctx.legend_label(g))
        for xi, m, e in zip(xs, means, np.nan_to_num(errs)):  # value above the error bar
            if np.isfinite(m):
                ax.annotate(f"{m:.1f}", (xi, max(m, 0) + e), xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize=7)
    ax.axhline(0, color="0.3", linewidth=0.8)
    ax.set_xticks(x, domains + ["mean"])
    ax.set_xlabel("seen domain (the last trained domain has no forgetting)")
    ax.set_ylabel("forgetting (mAP %, lower is better)")
    ax.margins(y=0.15)
    ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"Forgetting per domain: best earlier mAP − final mAP\n{ctx.title}")
    _shared_legend(fig, [ax], 4)
    return fig


def _heatmaps(ctx: _Context) -> "Figure":
    n_steps = max(len(mean) for mean, _ in ctx.seen)
    fig, axes = _figure(len(ctx.groups), 0.75 * len(ctx.domains) + 2.3, 0.75 * n_steps + 1.7, legend=False)
    values = np.concatenate([m.reindex(columns=ctx.domains).to_numpy().ravel() for m, _ in ctx.seen])
    vmin, vmax = (np.nanmin(values), np.nanmax(values)) if np.isfinite(values).any() else (0.0, 100.0)
    image = None
    for ax, g, (mean, _) in zip(axes, ctx.groups, ctx.seen):
        labels = g.runs[0].step_labels()
        steps = list(mean.index)
        grid = mean.reindex(columns=ctx.domains).to_numpy()
        image = ax.imshow(grid, cmap="viridis", vmin=vmin, vmax=vmax)
        _annotate(ax, grid, image)
        for r, step in enumerate(steps):  # outline the cells of the domains trained in that step
            trained = ctx.domains if labels.get(step) == UNION_LABEL else [labels.get(step)]
            for c in (ctx.domains.index(d) for d in trained if d in ctx.domains):
                ax.add_patch(_outline(c, r))
        ax.set_xticks(range(len(ctx.domains)), ctx.domains, rotation=30, ha="right", rotation_mode="anchor")
        ax.set_yticks(range(len(steps)), [f"{s}: {labels.get(s, '?')}" for s in steps])
        ax.set_xlabel("evaluated seen domain\n(red: trained in that step)")
        ax.set_ylabel("after training step")
        ax.set_title(g.display_label + (f", mean of {len(g.runs)} runs" if len(g.runs) > 1 else ""))
    fig.colorbar(image, ax=axes, label="mAP (%)", shrink=0.6)
    fig.suptitle(f"Results matrix, mAP (%)\n{ctx.title}")
    return fig


def _annotate(ax: "Axes", grid: np.ndarray, image: Any) -> None:
    for (r, c), v in np.ndenumerate(grid):
        if np.isfinite(v):
            r_, g_, b_, _ = image.cmap(image.norm(v))
            dark = 0.299 * r_ + 0.587 * g_ + 0.114 * b_ < 0.5
            ax.text(c, r, f"{v:.1f}", ha="center", va="center", fontsize=9, color="white" if dark else "black")


def _outline(col: int, row: int) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5)
