"""Figures of one run's diagnostics.csv (docs/metrics.md#6-diagnostics), into its plots/ folder:

- drift:     mean cosine and linear CKA of each seen domain's query features, step t-1 -> t
- alignment: mean cosine of the trained domain's images to their own text anchors, and the gap to others'
- routing:   share of each seen domain's picks in its own slots; slot usage at the last step; prompt /
             patch token norm per block
A figure whose diagnostics the run has none of (no text side, no prompt pool) is not drawn.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib.ticker import MaxNLocator

from .plots import _figure, _shared_legend, save_figure

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

DIAGNOSTICS_FILE = "diagnostics.csv"


def plot_diagnostics(run_dir: str | Path) -> list[Path]:
    """Draw the run's diagnostics figures into run_dir/plots/; none when it has no diagnostics.csv."""
    import pandas as pd

    path = Path(run_dir) / DIAGNOSTICS_FILE
    if not path.is_file():
        return []
    df = pd.read_csv(path, dtype={"eval_set": str, "eval_domain": str, "diagnostic": str, "index": str},
                     keep_default_na=False)
    if df.empty:
        return []
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    paths: list[Path] = []
    for name, draw in (("drift", _drift), ("alignment", _alignment), ("routing", _routing)):
        fig = draw(df)
        if fig is not None:
            paths += save_figure(fig, Path(run_dir) / "plots" / name)
    return paths


def _series(df: "pd.DataFrame", diagnostic: str, eval_set: str = "seen") -> "pd.DataFrame":
    """step x (domain or index) of one diagnostic."""
    rows = df[(df["diagnostic"] == diagnostic) & (df["eval_set"] == eval_set)]
    column = "eval_domain" if (rows["index"] == "").all() else "index"
    return rows.pivot_table(index="step", columns=column, values="value", sort=False)


def _lines(ax, table: "pd.DataFrame", title: str, ylabel: str) -> None:
    for name in table.columns:
        ax.plot(table.index, table[name], marker="o", markersize=4, label=str(name))
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _drift(df: "pd.DataFrame") -> "Figure | None":
    cos, cka = _series(df, "drift_cosine"), _series(df, "drift_cka")
    if cos.empty:
        return None
    fig, axes = _figure(2, 4.6, 3.4)
    _lines(axes[0], cos, "Feature drift: mean cosine to step t-1", "cosine")
    _lines(axes[1], cka, "Feature drift: linear CKA to step t-1", "CKA")
    _shared_legend(fig, axes, 5)
    return fig


def _alignment(df: "pd.DataFrame") -> "Figure | None":
    rows = df[df["eval_set"] == "train"].sort_values("step")
    if rows.empty:
        return None
    fig, axes = _figure(2, 4.6, 3.4, legend=False)
    for ax, name, title in ((axes[0], "anchor_cosine", "cosine to own text anchor"),
                            (axes[1], "anchor_gap", "gap to other anchors")):
        part = rows[rows["diagnostic"] == name]
        ax.plot(part["step"], part["value"], marker="o", markersize=4)
        for step, value, domain in zip(part["step"], part["value"], part["eval_domain"]):
            ax.annotate(domain, (step, value), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_title(f"Text-anchor alignment: {title}")
        ax.set_xlabel("step (points: the domain just trained)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("cosine")
    return fig


def _routing(df: "pd.DataFrame") -> "Figure | None":
    usage = df[df["diagnostic"] == "slot_usage"]
    if usage.empty:
        return None
    share = df[(df["diagnostic"] == "routing_share") & (df["eval_set"] == "seen")]
    share = share.pivot_table(index="step", columns="eval_domain", values="value", sort=False)  # mean over blocks
    ratio = df[df["diagnostic"] == "prompt_patch_norm"].pivot_table(index="step", columns="index", values="value")
    fig, axes = _figure(3, 4.6, 3.4)
    _lines(axes[0], share, "Routing: picks in the domain's own slots\n(mean over blocks)", "share")
    last = usage[usage["step"] == usage["step"].max()]
    hist = last.pivot_table(index="index", columns="eval_domain", values="value", sort=False)
    hist = hist.reindex(sorted(hist.index, key=int))
    bottom = None
    for domain in hist.columns:
        axes[1].bar(hist.index.astype(int), hist[domain], bottom=bottom, label=domain)
        bottom = hist[domain] if bottom is None else bottom + hist[domain]
    axes[1].set_title(f"Slot usage at step {int(last['step'].max())}")
    axes[1].set_xlabel("slot")
    axes[1].set_ylabel("share of picks (stacked over sets)")
    for block in ratio.columns:
        axes[2].plot(ratio.index, ratio[block], marker="o", markersize=4, linestyle="--", label=f"block {block}")
    axes[2].set_title("Prompt / patch token norm")
    axes[2].set_xlabel("step")
    axes[2].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[2].set_ylabel("ratio")
    _shared_legend(fig, axes, 6)
    return fig
