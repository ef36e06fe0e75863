"""`pad-bench compare`: tables (Markdown, CSV, LaTeX) and plots comparing finished runs.

One row per strategy and model: its backbone (model and initial weights), final mAP/R1 per seen
domain, Seen-Avg, Unseen-Avg and mean forgetting (mAP), plus a second table per unseen dataset.
Seeds are averaged: `mean ± std` (sample std, ddof=1) with their count in `n`. A table whose rows
use different backbones says so in a note and a logged warning.
"""
from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import UserError
from ..io import atomic_write_text
from .plots import plot_comparison
from .published import render_published_csv, render_published_markdown
from .runs import Run, RunGroup, group_runs, load_run, setting_differences, union_in_order

SEEN_AVG, UNSEEN_AVG, FORGETTING = "Seen-Avg", "Unseen-Avg", "Forgetting"
MIXED_MARKER = "!"

log = logging.getLogger("pad_bench")


@dataclass(frozen=True)
class Column:
    """One table column: a dataset (or average) and a metric; `get` reads a run's value."""

    group: str
    metric: str
    get: Callable[[Run], float | None]
    higher_is_better: bool = True

    @property
    def csv_name(self) -> str:
        return f"{self.group.lower().replace('-', '_')}_{self.metric}"


def compare_runs(run_dirs: Sequence[Path], out_dir: Path, force: bool = False,
                 published: bool = False) -> dict[str, Path]:
    """Write table.md, table.csv, table.tex and the comparison plots into out_dir; return {file name: path}.
    With `published`, table.md also lists the published results (not re-run, flagged where their
    protocol or order differs) and published.csv holds them.

    Raises UserError when a run directory is incomplete, or (unless force) when runs differ in
    benchmark, domain order, unseen list or a protocol setting.
    """
    if not run_dirs:
        raise UserError("no run directory given; pass one or more results/<run> folders")
    resolved = [Path(d).resolve() for d in run_dirs]
    repeated = next((d for i, d in enumerate(resolved) if d in resolved[:i]), None)
    if repeated:
        raise UserError(f"run directory {repeated} is given twice; pass each run once")
    runs = [load_run(d) for d in run_dirs]
    if not force:
        _refuse_mismatch(runs)
    groups = group_runs(runs)
    seen_cols, unseen_cols = table_columns(runs)
    title = f"{runs[0].benchmark}: final mAP/R1 (%)"
    sections = [("Seen domains", seen_cols), ("Unseen datasets", unseen_cols)]
    notes = footnotes(groups, runs[0])
    mixed = mixed_backbones(runs)
    if mixed:
        log.warning(mixed)
        notes.append((MIXED_MARKER, mixed))
    tables = {
        "table.md": render_markdown(title, sections, groups, notes),
        "table.csv": render_csv(seen_cols + unseen_cols, groups),
        "table.tex": render_latex(title, sections, groups, notes),
    }
    if published:
        configs = [r.config for r in runs]
        tables["table.md"] += "\n" + render_published_markdown(configs)
        tables["published.csv"] = render_published_csv(configs)
    out_dir = Path(out_dir)
    written: dict[str, Path] = {}
    for name, text in tables.items():
        atomic_write_text(out_dir / name, text)
        written[name] = out_dir / name
    written.update({p.name: p for p in plot_comparison(runs, out_dir)})
    return written


def _refuse_mismatch(runs: list[Run]) -> None:
    for run in runs[1:]:
        diffs = setting_differences(runs[0], run)
        if diffs:
            key, a, b = diffs[0]
            raise UserError(
                f"runs '{runs[0].name}' and '{run.name}' differ in {key}: {fmt_setting(a)} vs {fmt_setting(b)}; "
                "compare runs of the same benchmark and protocol, or pass --force to compare anyway"
            )


def table_columns(runs: Sequence[Run]) -> tuple[list[Column], list[Column]]:
    """Columns of the seen table (per domain, averages, forgetting) and of the unseen table."""
    seen = union_in_order([r.domains for r in runs])
    unseen = union_in_order([r.unseen for r in runs])
    seen_cols = [Column(d, m, _final(m, "seen", d)) for d in seen for m in ("mAP", "R1")]
    seen_cols += [Column(SEEN_AVG, m, _summary(m, "seen_avg_final")) for m in ("mAP", "R1")]
    seen_cols += [Column(UNSEEN_AVG, m, _summary(m, "unseen_avg_final")) for m in ("mAP", "R1")]
    seen_cols.append(Column(FORGETTING, "mAP", _summary("mAP", "forgetting_mean"), higher_is_better=False))
    unseen_cols = [Column(u, m, _final(m, "unseen", u)) for u in unseen for m in ("mAP", "R1")]
    return seen_cols, unseen_cols


def _final(metric: str, eval_set: str, name: str) -> Callable[[Run], float | None]:
    return lambda run: run.summary[metric]["final"][eval_set].get(name)


def _summary(metric: str, key: str) -> Callable[[Run], float | None]:
    return lambda run: run.summary[metric][key]


def footnotes(groups: Sequence[RunGroup], ref: Run) -> list[tuple[str, str]]:
    """(marker, text) per footnote marker: the settings in which those rows differ from the reference run."""
    notes: dict[str, str] = {}
    for g in groups:
        if g.marker and g.marker not in notes:
            diffs = "; ".join(f"{k} = {fmt_setting(b)} (reference: {fmt_setting(a)})" for k, a, b in g.differences)
            notes[g.marker] = f"settings differ from run '{ref.name}': {diffs}"
    return list(notes.items())


def mixed_backbones(runs: Sequence[Run]) -> str | None:
    """A warning when the runs use more than one backbone (model or initial weights), else None."""
    backbones = union_in_order([[r.backbone for r in runs]])
    if len(backbones) < 2:
        return None
    return (f"this table mixes backbones ({', '.join(backbones)}): rows differ by more than their method; "
            "compare methods on one backbone (e.g. --profile resnet for fine-tune and joint next to LSTKC and DKP)")


def fmt_setting(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def best_rows(col: Column, groups: Sequence[RunGroup]) -> set[int]:
    """Indices of the groups with the best (displayed) mean in this column; none when fewer than two have a value."""
    means = {i: round(m, 1) for i, g in enumerate(groups) if (m := g.stat(col.get)[0]) is not None}
    if len(means) < 2:
        return set()
    best = max(means.values()) if col.higher_is_better else min(means.values())
    return {i for i, m in means.items() if m == best}


def fmt_cell(mean: float | None, std: float | None) -> str:
    """`mean ± std` with one decimal; the mean alone for one run; – when missing."""
    if mean is None:
        return "–"
    return f"{mean:.1f}" if std is None else f"{mean:.1f} ± {std:.1f}"


def _column_pairs(cols: Sequence[Column]) -> list[list[Column]]:
    """Consecutive columns of the same dataset, e.g. [market1501 mAP, market1501 R1]."""
    pairs: list[list[Column]] = []
    for c in cols:
        if pairs and pairs[-1][0].group == c.group:
            pairs[-1].append(c)
        else:
            pairs.append([c])
    return pairs


Sections = Sequence[tuple[str, Sequence[Column]]]
Notes = Sequence[tuple[str, str]]


def render_markdown(title: str, sections: Sections, groups: Sequence[RunGroup], notes: Notes) -> str:
    """Markdown tables with one `mAP/R1` cell per dataset; the best value per column in bold."""
    lines = [f"# {title}", ""]
    for heading, cols in sections:
        if not cols:
            continue
        pairs = _column_pairs(cols)
        best = {c: best_rows(c, groups) for c in cols}
        head = [f"{p[0].group} {'/'.join(c.metric for c in p)}" for p in pairs]
        lines += [f"## {heading}", "", "| method | backbone | n | " + " | ".join(head) + " |",
                  "|---|---|---:|" + "---:|" * len(pairs)]
        for i, g in enumerate(groups):
            cells = [" / ".join(_md_cell(g, c, i in best[c]) for c in p) for p in pairs]
            lines.append(f"| {g.display_label} | {g.runs[0].backbone} | {len(g.runs)} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [*(f"{m} {text}  " for m, text in notes), ""] if notes else []
    return "\n".join(lines)


def _md_cell(g: RunGroup, col: Column, bold: bool) -> str:
    text = fmt_cell(*g.stat(col.get))
    return f"**{text}**" if bold and text != "–" else text


def render_csv(cols: Sequence[Column], groups: Sequence[RunGroup]) -> str:
    """One row per group: label, strategy, model, backbone, n, marker, then `<column>_mean` and `<column>_std`."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["label", "strategy", "model", "backbone", "n", "marker"]
                    + [f"{c.csv_name}_{s}" for c in cols for s in ("mean", "std")])
    for g in groups:
        run = g.runs[0]
        values = [v for c in cols for v in g.stat(c.get)]
        writer.writerow([g.label, run.strategy, run.model, run.backbone, len(g.runs), g.marker]
                        + ["" if v is None else repr(round(v, 6)) for v in values])
    return buf.getvalue()


def render_latex(title: str, sections: Sections, groups: Sequence[RunGroup], notes: Notes) -> str:
    """booktabs tables, one mAP and one R1 column per dataset; the best value per column in bold."""
    out = []
    for heading, cols in sections:
        if not cols:
            continue
        pairs = _column_pairs(cols)
        best = {c: best_rows(c, groups) for c in cols}
        spans, rules, col = [], [], 4
        for p in pairs:
            spans.append(rf"\multicolumn{{{len(p)}}}{{c}}{{{latex_escape(p[0].group)}}}")
            rules.append(rf"\cmidrule(lr){{{col}-{col + len(p) - 1}}}")
            col += len(p)
        body = [
            r"\begin{table}[t]",
            r"\centering",
            rf"\caption{{{latex_escape(title)} --- {latex_escape(heading.lower())}}}",
            r"\begin{tabular}{ll" + "r" * (len(cols) + 1) + "}",
            r"\toprule",
            "Method & Backbone & $n$ & " + " & ".join(spans) + r" \\",
            " ".join(rules),
            " & & & " + " & ".join(c.metric + ("$\\downarrow$" if not c.higher_is_better else "") for c in cols) + r" \\",
            r"\midrule",
        ]
        for i, g in enumerate(groups):
            label = latex_escape(g.label) + (f"$^{{{_latex_marker(g.marker)}}}$" if g.marker else "")
            cells = [_tex_cell(g, c, i in best[c]) for c in cols]
            body.append(f"{label} & {latex_escape(g.runs[0].backbone)} & {len(g.runs)} & " + " & ".join(cells) + r" \\")
        body.append(r"\bottomrule")
        body.append(r"\end{tabular}")
        body += [rf"\par\footnotesize $^{{{_latex_marker(m)}}}$ {latex_escape(text)}" for m, text in notes]
        body.append(r"\end{table}")
        out.append("\n".join(body))
    return "% requires \\usepackage{booktabs}\n" + "\n\n".join(out) + "\n"


def _tex_cell(g: RunGroup, col: Column, bold: bool) -> str:
    mean, std = g.stat(col.get)
    if mean is None:
        return "--"
    value = rf"\textbf{{{mean:.1f}}}" if bold else f"{mean:.1f}"
    return value if std is None else rf"{value}\,{{\scriptsize$\pm${std:.1f}}}"


_LATEX_MARKERS = {"†": r"\dagger", "‡": r"\ddagger", "§": r"\S", "¶": r"\P", "#": r"\#", MIXED_MARKER: "!"}


def _latex_marker(marker: str) -> str:
    return "".join(_LATEX_MARKERS[m] for m in marker)


_LATEX_SPECIAL = {c: "\\" + c for c in "&%$#_{}"} | {
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}", "<": r"\textless{}", ">": r"\textgreater{}",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)
