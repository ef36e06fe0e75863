"""`pad-bench datasets check`: which of the benchmarks' datasets are found under a root, with counts."""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from .datasets import create_dataset, dataset_names, get_dataset_class, split_counts
from .prepare import find_raw_release
from .protocol import select_ids

ID_RULE, IDS = "first_500_sorted", 500  # the default protocol's training-ID selection


def check_dataset(name: str, root: Path) -> dict:
    ds = create_dataset(name, root)
    found = ds.find_root()
    if found is None:
        raw = find_raw_release(name, root)
        if raw is None:
            return {"found": False}
        return {"found": False, "raw": str(raw),
                "hint": f"raw release found; `pad-bench datasets prepare {name} --root {root}` builds it"}
    entry: dict = {"found": True, "root": str(found)}
    unseen = ds.kind == "unseen"
    try:
        splits = ds.load_eval_splits()[0] if unseen else ds.load()
    except UserError as e:
        entry["error"] = str(e)
        return entry
    keep = set(select_ids(splits.train, ID_RULE, IDS)) if not unseen else None
    train = [r for r in splits.train if keep is None or r.pid in keep]
    entry["train"] = split_counts(train)
    entry["query"] = split_counts(splits.query)
    entry["gallery"] = split_counts(splits.gallery)
    return entry


def benchmark_datasets() -> list[str]:
    """Every real dataset a shipped benchmark trains or tests on, in the benchmarks' order."""
    from ..config import benchmark_layer, list_benchmarks

    names: list[str] = []
    for bench in list_benchmarks():
        values = benchmark_layer(bench).values
        names += [n for n in values.get("benchmark.domains", []) + values.get("benchmark.unseen", [])
                  if n not in names]
    return [n for n in names if get_dataset_class(n).kind != "synthetic"]


def check_datasets(root: Path) -> dict:
    """The benchmarks' datasets always; extra ones (lpw_s2, synthetic domains) when found."""
    report = {name: check_dataset(name, Path(root)) for name in benchmark_datasets()}
    for name in dataset_names():
        if name not in report:
            entry = check_dataset(name, Path(root))
            if entry["found"]:
                report[name] = entry
    return report


def format_report(report: dict, root: Path) -> str:
    lines = [f"datasets under {root} (train after selecting the {IDS} smallest IDs):",
             f"  {'dataset':<11} {'train img/ids/cams':>20} {'query img/ids':>15} {'gallery img/ids':>16}  folder"]
    for name, e in report.items():
        if not e["found"]:
            lines.append(f"  {name:<11} {'not found':>20}" + (f"  {e['hint']} (raw: {e['raw']})" if "hint" in e else ""))
        elif "error" in e:
            lines.append(f"  {name:<11} ERROR: {e['error']}")
        else:
            t, q, g = e["train"], e["query"], e["gallery"]
            lines.append(f"  {name:<11} {t['images']:>9}/{t['ids']:>5}/{t['cams']:>3}"
                         f" {q['images']:>9}/{q['ids']:>5} {g['images']:>10}/{g['ids']:>5}  {e['root']}")
    return "\n".join(lines)
