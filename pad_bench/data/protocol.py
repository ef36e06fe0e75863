"""The LReID protocol: ID selection per training domain, unseen splits, and data manifests.

Harness rule (docs/protocol.md#training-identities): after each adapter's pre-filters, a training domain keeps its
`ids_per_domain` smallest raw PIDs (`first_500_sorted`), or all of them (`all`). Labels are
0..C-1 in ascending raw-PID order. Test sets are never subsampled.
"""
from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from .datasets import ImageRecord, create_dataset


@dataclass
class TrainDomain:
    """A training domain after ID selection: records with their 0-based labels."""

    name: str
    train: list[ImageRecord]
    labels: list[int]
    query: list[ImageRecord]
    gallery: list[ImageRecord]

    @property
    def num_classes(self) -> int:
        return len(set(self.labels))


@dataclass
class EvalSet:
    """One query/gallery evaluation set; an unseen dataset under multi-split has several runs."""

    name: str
    run: int
    query: list[ImageRecord]
    gallery: list[ImageRecord]


def select_ids(records: list[ImageRecord], rule: str, n: int | str) -> list[int]:
    """The raw PIDs a training domain keeps, ascending."""
    pids = sorted({r.pid for r in records})
    if rule == "all" or n == "all":
        return pids
    if rule == "first_500_sorted":
        return pids[: int(n)]
    raise UserError(f"unknown id_select rule '{rule}' (valid: first_500_sorted, all)")


def build_train_domain(name: str, data_root: str | Path, protocol: dict) -> TrainDomain:
    ds = create_dataset(name, data_root, **protocol.get("dataset_options", {}))
    splits = ds.load()
    keep = select_ids(splits.train, protocol["id_select"], protocol["ids_per_domain"])
    label_of = {pid: i for i, pid in enumerate(keep)}
    train = [r for r in splits.train if r.pid in label_of]
    return TrainDomain(name, train, [label_of[r.pid] for r in train], splits.query, splits.gallery)


def build_unseen_sets(name: str, data_root: str | Path, protocol: dict) -> list[EvalSet]:
    options = dict(protocol.get("dataset_options", {}), seed=protocol["unseen_split_seed"])
    ds = create_dataset(name, data_root, **options)
    runs = ds.load_eval_splits(protocol["unseen_protocol"], protocol["unseen_split_seed"])
    return [EvalSet(name, i, s.query, s.gallery) for i, s in enumerate(runs)]


FINGERPRINTS = ("stat", "content")


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fingerprint_changes(old: str, new: str) -> tuple[int, str | None]:
    """(number of images whose fingerprint differs, the first such path) between two fingerprints."""
    def rows(text: str) -> dict[str, tuple]:
        return {r[0]: tuple(r[1:]) for r in list(csv.reader(io.StringIO(text)))[1:]}

    a, b = rows(old), rows(new)
    changed = sorted(p for p in set(a) | set(b) if a.get(p) != b.get(p))
    return len(changed), (changed[0] if changed else None)


UNSEEN_AVG = ("per_dataset", "pooled")
POOLED = "pooled"


def unseen_for_avg(sets: list[EvalSet], mode: str) -> list[EvalSet]:
    """The unseen evaluation sets under `protocol.unseen_avg`: `per_dataset` keeps one set per
    dataset (Unseen-Avg is their mean); `pooled` merges them into one (AKA/PatchKD's
    "allgeneralizable" setting): every query ranked against the gallery images of every dataset,
    pids keyed by (dataset, pid) so that identities of different datasets never match."""
    if mode not in UNSEEN_AVG:
        raise UserError(f"protocol.unseen_avg must be one of {', '.join(UNSEEN_AVG)}, got {mode!r}")
    if mode == "per_dataset" or not sets:
        return sets
    names = [s.name for s in sets]
    repeated = next((n for n in names if names.count(n) > 1), None)
    if repeated:
        raise UserError(f"protocol.unseen_avg: pooled merges one split per dataset, but '{repeated}' has "
                        f"{names.count(repeated)} (unseen_protocol: pad_multi_split); use unseen_protocol: single_split")
    ids: dict[tuple[str, int], int] = {}

    def keyed(s: EvalSet, records: list[ImageRecord]) -> list[ImageRecord]:
        return [ImageRecord(r.path, ids.setdefault((s.name, r.pid), len(ids)), r.camid) for r in records]

    return [EvalSet(POOLED, 0, [r for s in sets for r in keyed(s, s.query)],
                    [r for s in sets for r in keyed(s, s.gallery)])]


@dataclass
class Manifest:
    """Every image a run uses: (domain, role, split, run, relative path, raw pid, label, camid)."""

    data_root: Path
    rows: list[tuple] = field(default_factory=list)

    HEADER = ("domain", "role", "split", "run", "path", "pid", "label", "camid")

    def add(self, domain: str, role: str, split: str, run: int, records, labels=None) -> None:
        labels = labels if labels is not None else [-1] * len(records)
        for r, lab in zip(records, labels):
            self.rows.append((domain, role, split, run, self._rel(r.path), r.pid, lab, r.camid))

    def _rel(self, path: str) -> str:
        try:
            return Path(path).resolve().relative_to(self.data_root.resolve()).as_posix()
        except ValueError:
            return Path(path).as_posix()

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.HEADER)
        w.writerows(self.rows)
        return buf.getvalue()

    def sha256(self) -> str:
        return hashlib.sha256(self.to_csv().encode()).hexdigest()

    def fingerprint(self, mode: str = "stat") -> str:
        """CSV of every image the run reads: path, size, and mtime_ns ("stat", cheap) or the SHA-256
        of its bytes ("content"). Paths are relative to the data root, so moved data still matches."""
        if mode not in FINGERPRINTS:
            raise UserError(f"benchmark.fingerprint must be one of {', '.join(FINGERPRINTS)}, got {mode!r}")
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(("path", "size", "mtime_ns" if mode == "stat" else "sha256"))
        for rel in sorted({row[4] for row in self.rows}):
            path = self.data_root / rel
            st = path.stat()
            w.writerow((rel, st.st_size, st.st_mtime_ns if mode == "stat" else _file_sha256(path)))
        return buf.getvalue()

    def domain_hashes(self) -> dict[str, str]:
        """One SHA-256 per domain, so runs can be compared domain by domain across machines."""
        out: dict[str, hashlib._Hash] = {}
        for row in self.rows:
            out.setdefault(row[0], hashlib.sha256()).update(("\t".join(map(str, row)) + "\n").encode())
        return {k: h.hexdigest() for k, h in out.items()}
