"""Published results of lifelong ReID methods (pad_bench/results/published.csv), shown beside
measured runs for context only: they were not re-run, and the table flags every row whose protocol
or domain order differs from the measured runs'."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import UserError

PUBLISHED_FILE = Path(__file__).resolve().parent / "published.csv"
FIELDS = ("method", "venue", "backbone", "protocol", "order", "seen_mAP", "seen_R1", "unseen_mAP", "unseen_R1",
          "verified", "source")
PROTOCOLS = {
    "lstkc-family": "the first 500 identities of each training domain, labeled CUHK03, single-split unseen sets "
                    "(pad-bench's default protocol)",
    "patchkd": "the PatchKD/AKA pipeline: detected CUHK03, a pooled unseen gallery, Adam for 50 epochs",
    "pad": "every identity of each training domain and PAD's multi-split unseen protocol",
    "dafc": "every identity, detected CUHK03, unseen VIPeR, GRID, CUHK02, Occluded-Duke, Occluded-REID and PRID "
            "(DAFC's evaluate.py)",
}
ORDERS = {
    "1": ["market1501", "cuhk_sysu", "dukemtmc", "msmt17", "cuhk03"],
    "2": ["dukemtmc", "msmt17", "market1501", "cuhk_sysu", "cuhk03"],
}


@dataclass(frozen=True)
class PublishedRow:
    method: str
    venue: str
    backbone: str
    protocol: str
    order: str
    seen: tuple[float | None, float | None]
    unseen: tuple[float | None, float | None]
    verified: bool
    source: str


def load_published(path: Path = PUBLISHED_FILE) -> list[PublishedRow]:
    """The rows of the published-results table."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != FIELDS:
            raise UserError(f"{path}: expected the columns {', '.join(FIELDS)}")
        rows = []
        for i, r in enumerate(reader, start=2):
            if r["protocol"] not in PROTOCOLS or r["order"] not in ORDERS or not r["source"]:
                raise UserError(f"{path} line {i}: unknown protocol or order, or no source")
            rows.append(PublishedRow(r["method"], r["venue"], r["backbone"], r["protocol"], r["order"],
                                     (_number(r["seen_mAP"]), _number(r["seen_R1"])),
                                     (_number(r["unseen_mAP"]), _number(r["unseen_R1"])),
                                     r["verified"] == "yes", r["source"]))
    return rows


def _number(text: str) -> float | None:
    return float(text) if text.strip() else None


def run_protocol(config: dict[str, Any]) -> str:
    """The published protocol a run's config follows, or 'custom'."""
    p = config.get("protocol") or {}
    cuhk03 = (p.get("dataset_options") or {}).get("cuhk03_mode", "labeled")
    if p.get("ids_per_domain") == 500 and p.get("unseen_protocol") == "single_split" and cuhk03 == "labeled":
        return "lstkc-family"
    if p.get("ids_per_domain") == "all" and p.get("unseen_protocol") == "pad_multi_split":
        return "pad"
    return "custom"


def run_order(domains: Sequence[str]) -> str | None:
    """'1' or '2' for the two standard training orders, else None."""
    return next((k for k, v in ORDERS.items() if list(domains) == v), None)


def flags(row: PublishedRow, configs: Sequence[dict[str, Any]]) -> list[str]:
    """Why this row is not comparable with the measured runs (their config.yaml contents)."""
    out = []
    protocols = {run_protocol(c) for c in configs}
    orders = {run_order(c["benchmark"]["domains"]) for c in configs}
    if protocols != {row.protocol}:
        out.append(f"protocol differs ({row.protocol} vs measured {', '.join(sorted(protocols))})")
    if orders != {row.order}:
        measured = ", ".join(sorted("other stream" if o is None else f"order {o}" for o in orders))
        out.append(f"order differs (order {row.order} vs measured {measured})")
    if not row.verified:
        out.append("unverified (third-party summary)")
    return out


def _pair(values: tuple[float | None, float | None]) -> str:
    return " / ".join("–" if v is None else f"{v:.1f}" for v in values)


def render_published_markdown(configs: Sequence[dict[str, Any]], rows: Sequence[PublishedRow] | None = None) -> str:
    """A Markdown section of every published row, labelled as not re-run, with its flags and source."""
    rows = load_published() if rows is None else rows
    lines = ["## Published results (not re-run)", "",
             "Quoted from their sources for context; pad-bench did not produce them. ⚠ marks what makes a row "
             "incomparable with the measured runs above.", "",
             "| method | venue | backbone | protocol | order | Seen-Avg mAP/R1 | Unseen-Avg mAP/R1 | flags | source |",
             "|---|---|---|---|---:|---:|---:|---|---|"]
    for r in rows:
        warn = "; ".join(f"⚠ {f}" for f in flags(r, configs))
        lines.append(f"| {r.method} (not re-run) | {r.venue or '–'} | {r.backbone or '–'} | {r.protocol} | {r.order} "
                     f"| {_pair(r.seen)} | {_pair(r.unseen)} | {warn} | {r.source} |")
    lines += ["", "Protocols: " + "; ".join(f"**{k}**: {v}" for k, v in PROTOCOLS.items()) + ".", ""]
    return "\n".join(lines)


def render_published_csv(configs: Sequence[dict[str, Any]], rows: Sequence[PublishedRow] | None = None) -> str:
    """The published rows with a `flags` column (semicolon-separated), as CSV."""
    import io

    rows = load_published() if rows is None else rows
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*FIELDS, "re_run", "flags"])
    for r in rows:
        writer.writerow([r.method, r.venue, r.backbone, r.protocol, r.order, *("" if v is None else v for v in r.seen),
                         *("" if v is None else v for v in r.unseen), "yes" if r.verified else "no", r.source, "no",
                         "; ".join(flags(r, configs))])
    return buf.getvalue()
