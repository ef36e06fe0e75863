"""`pad-bench compare`: tables (Markdown, CSV, LaTeX) and plots comparing finished runs.

One row per strategy and model: its backbone (model and initial weights), final mAP/R1 per seen
domain, Seen-Avg, Unseen-Avg and mean forgetting (mAP), plus a second table per unseen dataset.
Seeds are averaged: `mean ± std` (sample std, ddof=1) with their count in `n`. A table whose rows
use different backbones says so in a note and a logged warning, and so does a row whose seeds ran
on different hardware or at different precisions. A value is bold only when its row
is best and significantly better than every other row (paired by seed, see stats.py), never inside
the noise. With a baseline, a third table gives each row's mean difference from it with a 95 % CI and p.
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
from .runs import Run, RunGroup, check_unique_seeds, group_runs, load_run, setting_differences, union_in_order
from .stats import PairedDifference, clear_winner, paired_difference

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


def compare_runs(run_dirs: Sequence[Path], out_dir: Path, force: bool = False, published: bool = False,
                 baseline: str | None = None, sweep_keys: Sequence[str] = (),
                 skip_unfinished: bool = False) -> dict[str, Path]:
    """Write table.md, table.csv, table.tex and the comparison plots into out_dir; return {file name: path}.
    With `published`, table.md also lists the published results (not re-run, flagged where their
    protocol or order differs) and published.csv holds them.

    `baseline` names a row (its label, or a part of it that only one label has): every other row gets
    its paired difference from it. Each of `sweep_keys` (dotted config keys) gets sensitivity plots.
    Raises UserError when a run directory is incomplete, when a run did not reach its last step
    (with skip_unfinished it is left out and listed under the table instead), when one seed of a
    strategy is given twice, when out_dir is a file or lies inside a run directory, or (unless
    force) when runs differ in benchmark, domain order, unseen list or a protocol setting.
    """
    if not run_dirs:
        raise UserError("no run directory given; pass one or more results/<run> folders")
    resolved = [Path(d).resolve() for d in run_dirs]
    repeated = next((d for i, d in enumerate(resolved) if d in resolved[:i]), None)
    if repeated:
        raise UserError(f"run directory {repeated} is given twice; pass each run once")
    _check_out_dir(Path(out_dir), resolved)
    runs = [load_run(d) for d in run_dirs]
    unfinished = [r for r in runs if not r.finished]
    if unfinished and not skip_unfinished:
        r = unfinished[0]
        raise UserError(f"run '{r.name}' did not finish (last step {r.last_step} of {r.total_steps}); resume "
                        f"it with --resume, or pass --skip-unfinished to leave unfinished runs out")
    runs = [r for r in runs if r.finished]
    if not runs:
        raise UserError("no finished run to compare; resume the runs with --resume")
    if not force:
        _refuse_mismatch(runs)
    groups = group_runs(runs)
    check_unique_seeds(groups)
    seen_cols, unseen_cols = table_columns(runs)
    diffs = Differences.of(groups, find_baseline(groups, baseline), seen_cols) if baseline else None
    title = f"{runs[0].benchmark}: final mAP/R1 (%)"
    sections = [("Seen domains", seen_cols), ("Unseen datasets", unseen_cols)]
    notes = footnotes(groups, runs[0])
    mixed = mixed_backbones(runs)
    if mixed:
        log.warning(mixed)
        notes.append((MIXED_MARKER, mixed))
    for line in mixed_rows(groups):
        log.warning(line)
        notes.append((MIXED_MARKER, line))
    for r in runs:
        nan = r.nan_results()
        if nan:
            text = (f"run '{r.name}' has {len(nan)} NaN result(s) in metrics.csv (first: {nan[0]}): every mean it "
                    f"enters shows –, and paired differences leave its seed out")
            log.warning("%s", text)
            notes.append(("", text))
    for r in unfinished:
        log.warning("left out unfinished run %s (step %d of %d)", r.path, r.last_step, r.total_steps)
        notes.append(("", f"not compared: run '{r.name}' is unfinished (step {r.last_step} of {r.total_steps})"))
    tables = {
        "table.md": render_markdown(title, sections, groups, notes, diffs),
        "table.csv": render_csv(seen_cols + unseen_cols, groups, diffs),
        "table.tex": render_latex(title, sections, groups, notes, diffs),
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
    if sweep_keys:
        from .sensitivity import plot_sensitivity

        written.update({p.name: p for p in plot_sensitivity(runs, sweep_keys, out_dir)})
    return written


def _check_out_dir(out_dir: Path, run_dirs: Sequence[Path]) -> None:
    """The output folder must be a folder, and no run's own folder (compare would overwrite its plots)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} is a file; pass a folder for the tables and plots")
    out = out_dir.resolve()
    for run in run_dirs:
        if out == run or run in out.parents:
            raise UserError(f"--out {out_dir} is inside run directory {run}; its files would be overwritten, "
                            f"choose a folder outside the runs")
    if (out_dir / "config.yaml").is_file():
        raise UserError(f"--out {out_dir} is a run directory; choose a folder outside the runs")


def find_baseline(groups: Sequence[RunGroup], name: str) -> int:
    """The index of the row named `name`: its whole label, or a part found in one label only."""
    labels = [g.label for g in groups]
    if name in labels:
        return labels.index(name)
    hits = [i for i, label in enumerate(labels) if name.lower() in label.lower()]
    if len(hits) == 1:
        return hits[0]
    listed = "; ".join(f"'{label}'" for label in labels)
    what = "matches no row" if not hits else "matches several rows"
    raise UserError(f"--baseline '{name}' {what}; name one of: {listed}")


@dataclass
class Differences:
    """Each row's paired difference from the baseline row, in the summary columns."""

    baseline: int
    columns: list[Column]
    cells: dict[tuple[int, int], PairedDifference]

    @classmethod
    def of(cls, groups: Sequence[RunGroup], baseline: int, cols: Sequence[Column]) -> "Differences":
        summary = [c for c in cols if c.group in (SEEN_AVG, UNSEEN_AVG, FORGETTING)]
        base = {j: groups[baseline].per_seed(c.get) for j, c in enumerate(summary)}
        cells = {(i, j): paired_difference(g.per_seed(c.get), base[j])
                 for i, g in enumerate(groups) if i != baseline for j, c in enumerate(summary)}
        return cls(baseline, summary, cells)

    def pairs(self, row: int) -> int:
        return max((d.n for (i, _), d in self.cells.items() if i == row), default=0)

    @property
    def heading(self) -> str:
        return "Difference from the baseline"

    def legend(self, baseline_label: str) -> str:
        return (f"Mean difference from '{baseline_label}' over the seeds both have (row minus baseline), "
                f"[95 % CI] and the paired t-test's p; * p < 0.05. Forgetting: lower is better.")


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
            "compare methods on one backbone (a profile such as --profile resnet puts the baselines on the others' backbone)")


def mixed_rows(groups: Sequence[RunGroup]) -> list[str]:
    """One warning per row whose seeds ran on different hardware (CPU model, kernel level, GPU) or at
    different precisions: their spread is then not only the seed's. Runs that recorded no hardware
    (older runs) are left out of the hardware check."""
    lines = []
    for g in groups:
        mixed = [f"{what} ({'; '.join(values)})" for what, values in (
            ("hardware", union_in_order([[r.hardware for r in g.runs if r.hardware is not None]])),
            ("precision", union_in_order([[r.precision for r in g.runs]]))) if len(values) > 1]
        if mixed:
            lines.append(f"row '{g.display_label}' mixes {' and '.join(mixed)} across its seeds: its spread is "
                         f"not only the seeds'; compare runs made on one machine at one precision")
    return lines


def fmt_setting(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def best_rows(col: Column, groups: Sequence[RunGroup]) -> set[int]:
    """The row to bold in this column: best and significantly better than every other row; else none."""
    winner = clear_winner([g.per_seed(col.get) for g in groups], col.higher_is_better)
    return set() if winner is None else {winner}


def fmt_diff(d: PairedDifference, *, p: bool = True) -> str:
    """`+2.1 [0.4, 3.8] p=0.031*`; the mean alone for one seed; – without a pair."""
    if d.mean is None:
        return "–"
    if d.ci_low is None:
        return f"{d.mean:+.1f} (1 seed)"
    text = f"{d.mean:+.1f} [{d.ci_low:.1f}, {d.ci_high:.1f}]" + (f" p={d.p:.3f}" if p else "")
    return text + ("*" if d.significant else "")


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


BOLD_LEGEND = "Bold: best and significantly better than every other row (paired t-test over seeds, p < 0.05)."


def render_markdown(title: str, sections: Sections, groups: Sequence[RunGroup], notes: Notes,
                    diffs: Differences | None = None) -> str:
    """Markdown tables with one `mAP/R1` cell per dataset (bold: a clear winner), then the differences."""
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
    lines += [BOLD_LEGEND, ""]
    lines += [*(f"{m} {text}  " for m, text in notes), ""] if notes else []
    if diffs is not None:
        base = groups[diffs.baseline].display_label
        cols = diffs.columns
        lines += [f"## {diffs.heading}: {base}", "",
                  "| method | pairs | " + " | ".join(f"{c.group} {c.metric}" for c in cols) + " |",
                  "|---|---:|" + "---:|" * len(cols)]
        for i, g in enumerate(groups):
            if i != diffs.baseline:
                cells = [fmt_diff(diffs.cells[i, j]) for j in range(len(cols))]
                lines.append(f"| {g.display_label} | {diffs.pairs(i)} | " + " | ".join(cells) + " |")
        lines += ["", diffs.legend(base), ""]
    return "\n".join(lines)


def _md_cell(g: RunGroup, col: Column, bold: bool) -> str:
    text = fmt_cell(*g.stat(col.get))
    return f"**{text}**" if bold and text != "–" else text


DIFF_FIELDS = ("diff", "diff_ci_low", "diff_ci_high", "diff_p", "diff_n")


def render_csv(cols: Sequence[Column], groups: Sequence[RunGroup], diffs: Differences | None = None) -> str:
    """One row per group: label, strategy, model, backbone, n, marker, then `<column>_mean` and `<column>_std`;
    with a baseline also `is_baseline` and per summary column `<column>_diff[_ci_low|_ci_high|_p|_n]`."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    head = (["label", "strategy", "model", "backbone", "n", "marker"]
            + [f"{c.csv_name}_{s}" for c in cols for s in ("mean", "std")])
    if diffs is not None:
        head += ["is_baseline"] + [f"{c.csv_name}_{f}" for c in diffs.columns for f in DIFF_FIELDS]
    writer.writerow(head)
    for i, g in enumerate(groups):
        run = g.runs[0]
        values = [v for c in cols for v in g.stat(c.get)]
        row = ([g.label, run.strategy, run.model, run.backbone, len(g.runs), g.marker]
               + [_csv_number(v) for v in values])
        if diffs is not None:
            row.append(i == diffs.baseline)
            for j in range(len(diffs.columns)):
                d = diffs.cells.get((i, j))
                row += [""] * len(DIFF_FIELDS) if d is None else [
                    *(_csv_number(v) for v in (d.mean, d.ci_low, d.ci_high, d.p)), d.n]
        writer.writerow(row)
    return buf.getvalue()


def _csv_number(v: float | None) -> str:
    return "" if v is None else repr(round(v, 6))


def render_latex(title: str, sections: Sections, groups: Sequence[RunGroup], notes: Notes,
                 diffs: Differences | None = None) -> str:
    """booktabs tables, one mAP and one R1 column per dataset (bold: a clear winner), then the differences."""
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
        head = [
            "Method & Backbone & $n$ & " + " & ".join(spans) + r" \\",
            " ".join(rules),
            " & & & " + " & ".join(c.metric + ("$\\downarrow$" if not c.higher_is_better else "") for c in cols) + r" \\",
        ]
        rows = []
        for i, g in enumerate(groups):
            label = latex_escape(g.label) + (f"$^{{{_latex_marker(g.marker)}}}$" if g.marker else "")
            cells = [_tex_cell(g, c, i in best[c]) for c in cols]
            rows.append(f"{label} & {latex_escape(g.runs[0].backbone)} & {len(g.runs)} & " + " & ".join(cells) + r" \\")
        footnotes = [f"$^{{{_latex_marker(m)}}}$ {latex_escape(text)}" for m, text in notes]
        out.append(_latex_table(f"{latex_escape(title)} --- {latex_escape(heading.lower())}",
                                "ll" + "r" * (len(cols) + 1), head, rows, footnotes + [latex_escape(BOLD_LEGEND)]))
    if diffs is not None:
        out.append(_latex_differences(title, groups, diffs))
    return "% requires \\usepackage{booktabs}\n" + "\n\n".join(out) + "\n"


def _latex_table(caption: str, columns: str, head: list[str], rows: list[str], footnotes: list[str]) -> str:
    """A booktabs table: the `head` lines above the mid rule, `rows` below it, a paragraph per footnote."""
    return "\n".join([
        r"\begin{table}[t]", r"\centering", rf"\caption{{{caption}}}", rf"\begin{{tabular}}{{{columns}}}",
        r"\toprule", *head, r"\midrule", *rows, r"\bottomrule", r"\end{tabular}",
        *(rf"\par\footnotesize {f}" for f in footnotes), r"\end{table}",
    ])


def _latex_differences(title: str, groups: Sequence[RunGroup], diffs: Differences) -> str:
    base = groups[diffs.baseline].label
    cols = diffs.columns
    head = ["Method & pairs & " + " & ".join(latex_escape(f"{c.group} {c.metric}") for c in cols) + r" \\"]
    rows = [f"{latex_escape(g.label)} & {diffs.pairs(i)} & "
            + " & ".join(_tex_diff(diffs.cells[i, j]) for j in range(len(cols))) + r" \\"
            for i, g in enumerate(groups) if i != diffs.baseline]
    return _latex_table(f"{latex_escape(title)} --- {latex_escape(diffs.heading.lower())} {latex_escape(base)}",
                        "l" + "r" * (len(cols) + 1), head, rows, [latex_escape(diffs.legend(base))])


def _tex_diff(d: PairedDifference) -> str:
    if d.mean is None:
        return "--"
    if d.ci_low is None:
        return f"${d.mean:+.1f}$"
    star = "$^{*}$" if d.significant else ""
    return rf"${d.mean:+.1f}${star}\,{{\scriptsize$[{d.ci_low:.1f}, {d.ci_high:.1f}]$}}"


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
