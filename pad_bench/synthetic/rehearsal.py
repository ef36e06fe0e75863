"""Rehearsal trees: the twelve real datasets of the benchmarks drawn by the synthetic renderer.

Each dataset is written in its own release's folder layout and file naming (docs/protocol.md#dataset-folders),
with the identity, image, query and gallery counts of the protocol (`PAPER_COUNTS`, docs/synthetic.md#rehearsal-trees)
or those counts scaled down, so that the real adapters read it and a paper-scale run can be rehearsed
(cost, memory, breakage) without the real data. Every file is a JPEG, whatever the release's extension.

Every image comes from a random stream keyed by (seed, dataset, purpose, index), so a file's bytes do not
depend on the order or the process that wrote it: a killed generation resumes by writing the files that are
missing (each one is written atomically), and `DIR/.rehearsal/<dataset>.json` marks a finished dataset.
"""
from __future__ import annotations

import io
import json
import math
import multiprocessing
import os
import time
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..errors import UserError
from ..io import atomic_write, atomic_write_json
from .domains import SynthConfig, render_image, sample_domain_style, sample_look

REHEARSAL_VERSION = 1  # bump when a layout or the renderer changes
MARKERS = ".rehearsal"
_LOOK, _IMAGE, _SPLIT = 2, 3, 4  # purposes of the random streams (the renderer's style stream is its own)

# The protocol's counts (docs/protocol.md): per seen domain the training set before the 500-ID cut, the query
# and the gallery; `gallery_images` belong to the query identities, `gallery_only_*` are identities found only
# in the gallery, `distractors` are pid-0 images. Per unseen set the sizes of the release itself.
PAPER_COUNTS: dict[str, dict[str, int]] = {
    "market1501": dict(train_ids=751, train_images=12936, query_ids=750, query_images=3368, gallery_images=13120,
                       distractors=2793, cams=6),
    "cuhk_sysu": dict(train_ids=942, train_images=4374, query_ids=2900, query_images=2900, gallery_images=5447),
    "dukemtmc": dict(train_ids=702, train_images=16522, query_ids=702, query_images=2228, gallery_images=11169,
                     gallery_only_ids=408, gallery_only_images=6492, cams=8),
    "msmt17": dict(train_ids=1041, train_images=30248, val_images=2373, query_ids=3060, query_images=11659,
                   gallery_images=82161, cams=15),
    "cuhk03": dict(train_ids=767, train_images=7368, query_ids=700, query_images=1400, gallery_images=5328, cams=2),
    "viper": dict(ids=632),
    "prid": dict(shared_ids=200, cam_a_only_ids=185, cam_b_only_ids=549),
    "grid": dict(ids=250, distractors=775),
    "ilids": dict(ids=119, images=476),
    "cuhk01": dict(ids=971),
    "cuhk02": dict(p1_ids=971, p2_ids=306, p3_ids=107, p4_ids=193, p5_ids=239),
    "sensereid": dict(probe_ids=522, probe_images=1040, gallery_ids=1717, gallery_images=3388),
}
# An *_images count scales with the identities it belongs to (images per identity stay as in the release).
IMAGES_OF = {"train_images": "train_ids", "val_images": "train_ids", "query_images": "query_ids",
             "gallery_images": "query_ids", "gallery_only_images": "gallery_only_ids", "images": "ids",
             "probe_images": "probe_ids"}
SENSEREID_GALLERY = ("gallery_images", "gallery_ids")  # scales with its own identities
FIXED = ("cams",)
MIN_TRAIN_IDS = 8  # a P x K batch of the tiny profiles (P = 8) must fit in every scaled training domain
MIN_IDS = 4  # other identity counts: an unseen set halved still has two test identities
ONE_OR_MORE = ("distractors", "cam_a_only_ids", "cam_b_only_ids")


@dataclass(frozen=True)
class Scale:
    """What a `--scale` writes: `fraction` of every identity count, at height x width pixels."""

    fraction: float
    height: int
    width: int
    jpeg_quality: int = 90


SCALES = {"paper": Scale(1.0, 256, 128), "tiny": Scale(0.004, 64, 32)}


def scaled_counts(name: str, fraction: float) -> dict[str, int]:
    """PAPER_COUNTS[name] at `fraction`: identity counts floor(n * fraction + 0.5), at least MIN_TRAIN_IDS for
    training identities, MIN_IDS for other identities, 1 for distractors and one-camera persons; image counts keep their identities'
    images per identity; camera counts stay."""
    paper = PAPER_COUNTS[name]

    def ids(key: str) -> int:
        n = math.floor(paper[key] * fraction + 0.5)
        low = MIN_TRAIN_IDS if key == "train_ids" else 1 if key in ONE_OR_MORE else MIN_IDS
        return paper[key] if fraction == 1.0 else max(low, n)

    out = {k: v if k in FIXED else ids(k) for k, v in paper.items() if k not in IMAGES_OF and k != "gallery_ids"}
    if "gallery_ids" in paper:  # SenseReID: the probe identities are among the gallery's
        out["gallery_ids"] = max(out["probe_ids"], ids("gallery_ids"))
    for key, of in IMAGES_OF.items():
        if key in paper:
            owner = "gallery_ids" if (key, of) == ("gallery_images", "query_ids") and name == "sensereid" else of
            out[key] = max(out[owner], math.floor(paper[key] / paper[owner] * out[owner] + 0.5))
    return out


# ---- what each dataset holds ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Shot:
    """One image: its path under the data root, the identity drawn (`look`), the camera style, and for list
    files (MSMT17) the split and the label written next to it."""

    rel: str
    look: int
    cam: int
    split: str = ""
    pid: int = 0


def spread(n_images: int, n_ids: int) -> list[int]:
    """n_images over n_ids identities as evenly as possible, the first ones taking the remainder."""
    if n_ids == 0:
        return []
    base, extra = divmod(n_images, n_ids)
    return [base + (i < extra) for i in range(n_ids)]


def _seen_shots(c: dict[str, int], name: Callable[[str, int, int, int], str]) -> list[Shot]:
    """Train, query and gallery images of a seen domain; name(split, pid, camera 1-based, serial) is its path.
    Training pids are 1..T, test pids T+1..; an identity's images cycle through the cameras from its own
    offset, its gallery images continuing after its query images, so that every query has a match on
    another camera. Distractors are pid 0."""
    cams, shots, serial = c.get("cams", 1), [], 0

    def add(split: str, pid: int, look: int, n: int, start: int = 0) -> None:
        nonlocal serial
        for j in range(n):
            serial += 1
            cam = (look + start + j) % cams
            shots.append(Shot(name(split, pid, cam + 1, serial), look, cam, split, pid))

    t, q = c["train_ids"], c["query_ids"]
    for i, n in enumerate(spread(c["train_images"], t)):
        add("train", i + 1, i, n)
    for i, n in enumerate(spread(c.get("val_images", 0), t)):
        add("val", i + 1, i, n, start=n + 1)
    for i, (nq, ng) in enumerate(zip(spread(c["query_images"], q), spread(c["gallery_images"], q))):
        add("query", t + i + 1, t + i, nq)
        add("gallery", t + i + 1, t + i, ng, start=nq)
    g = c.get("gallery_only_ids", 0)
    for i, n in enumerate(spread(c.get("gallery_only_images", 0), g)):
        add("gallery", t + q + i + 1, t + q + i, n)
    for j in range(c.get("distractors", 0)):
        add("gallery", 0, t + q + g + j, 1)
    return shots


MARKET_DIRS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}


def market1501(c: dict[str, int]) -> list[Shot]:
    return _seen_shots(c, lambda s, p, cam, i: f"Market-1501/{MARKET_DIRS[s]}/{p:04d}_c{cam}s1_{i:06d}_00.jpg")


def dukemtmc(c: dict[str, int]) -> list[Shot]:
    return _seen_shots(c, lambda s, p, cam, i: f"DukeMTMC-reID/{MARKET_DIRS[s]}/{p:04d}_c{cam}_f{i:07d}.jpg")


def cuhk03(c: dict[str, int]) -> list[Shot]:
    return _seen_shots(c, lambda s, p, cam, i: f"cuhk03-np/labeled/{MARKET_DIRS[s]}/{p:04d}_c{cam}_{i}.jpg")


def cuhk_sysu(c: dict[str, int]) -> list[Shot]:
    """LSTKC's crops: `{pid:05d}_s{scene}_{idx:07d}_{is_hard}.jpg`, one scene per crop here."""
    return _seen_shots(c, lambda s, p, cam, i: f"CUHK-SYSU/cuhksysu4reid/{s}/{p:05d}_s{i}_{i:07d}_0.jpg")


def msmt17(c: dict[str, int]) -> list[Shot]:
    """V2 folders; test pids are numbered from 0 again, as in the release (the drawn identity stays apart).
    Names `{pid:04d}/{pid:04d}_{n:03d}_{cam:02d}_0303morning_{frame:04d}_0.jpg`, n counting per pid."""
    t, per_pid = c["train_ids"], {}

    def name(split: str, pid: int, cam: int, serial: int) -> str:
        label = pid - 1 if split in ("train", "val") else pid - t - 1
        folder = "mask_train_v2" if split in ("train", "val") else "mask_test_v2"
        n = per_pid[(folder, label)] = per_pid.get((folder, label), -1) + 1
        return f"MSMT17_V2/{folder}/{label:04d}/{label:04d}_{n:03d}_{cam:02d}_0303morning_{serial:04d}_0.jpg"

    shots = _seen_shots(c, name)
    return [Shot(s.rel, s.look, s.cam, s.split, s.pid - 1 if s.split in ("train", "val") else s.pid - t - 1)
            for s in shots]


def msmt17_lists(root: Path, shots: list[Shot], c: dict[str, int], seed: int) -> None:
    base = root / "MSMT17_V2"
    for split in ("train", "val", "query", "gallery"):
        folder = base / ("mask_train_v2" if split in ("train", "val") else "mask_test_v2")
        lines = [f"{Path(s.rel).relative_to(folder.relative_to(root)).as_posix()} {s.pid}\n"
                 for s in shots if s.split == split]
        atomic_write(base / f"list_{split}.txt", lambda tmp, lines=lines: Path(tmp).write_text("".join(lines)))


def viper(c: dict[str, int]) -> list[Shot]:
    """`cam_a/NNN_0.jpg`, `cam_b/NNN_90.jpg`: the i-th file of each camera is person i."""
    return [Shot(f"viper/VIPeR/cam_{side}/{i:03d}_{angle}.jpg", i, cam)
            for i in range(c["ids"]) for cam, (side, angle) in enumerate((("a", 0), ("b", 90)))]


def prid(c: dict[str, int]) -> list[Shot]:
    """Persons 1..S in both cameras; 201.. seen by one camera only (different people in each camera)."""
    s, a, b = c["shared_ids"], c["cam_a_only_ids"], c["cam_b_only_ids"]
    base = "prid2011/single_shot"
    shots = [Shot(f"{base}/cam_{side}/person_{p:04d}.jpg", p, cam) for p in range(1, s + 1)
             for cam, side in enumerate("ab")]
    shots += [Shot(f"{base}/cam_a/person_{p:04d}.jpg", 1000 + p, 0) for p in range(201, 201 + a)]
    return shots + [Shot(f"{base}/cam_b/person_{p:04d}.jpg", 2000 + p, 1) for p in range(201, 201 + b)]


def grid(c: dict[str, int]) -> list[Shot]:
    """probe / gallery `PPPP_C_frame_x_y_w_h.jpeg` for persons 1..N; `0000_*` distractors in the gallery."""
    n, base = c["ids"], "grid/underground_reid"
    shots = [Shot(f"{base}/{side}/{p:04d}_{1 + cam * 4 + p % 4}_{p * 10 + cam:05d}_0_0_64_128.jpeg", p, cam)
             for p in range(1, n + 1) for cam, side in enumerate(("probe", "gallery"))]
    return shots + [Shot(f"{base}/gallery/0000_{1 + j % 8}_{90000 + j:05d}_0_0_64_128.jpeg", n + 1 + j, 1)
                    for j in range(c["distractors"])]


MAT_HEADER = "MATLAB 5.0 MAT-file, written by pad-bench (rehearsal tree)"


def grid_partitions(root: Path, shots: list[Shot], c: dict[str, int], seed: int) -> None:
    """`features_and_partitions.mat`: `trainIdxAll`, 10 random halves of the persons (the release's fields)."""
    from scipy.io import savemat

    rng = np.random.default_rng([seed, DATASETS.index("grid"), _SPLIT])
    cells = np.empty((1, 10), dtype=object)
    for s in range(10):
        train = np.sort(rng.permutation(np.arange(1, c["ids"] + 1))[: c["ids"] // 2])
        cells[0, s] = {"trainIdx": np.array([[s + 1.0]]), "testIdx": np.array([[0.0]]),
                       "idx": train.astype(float)[None, :]}
    buf = io.BytesIO()
    savemat(buf, {"trainIdxAll": cells})
    data = MAT_HEADER.ljust(116).encode() + buf.getvalue()[116:]  # savemat's header text holds the time
    path = root / "grid/underground_reid/features_and_partitions.mat"
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def ilids(c: dict[str, int]) -> list[Shot]:
    """`Persons/PPPPSSS.jpg`: pid, then a running image number."""
    counts = spread(c["images"], c["ids"])
    firsts = np.cumsum([0] + counts)
    return [Shot(f"i-LIDS_Pedestrian/Persons/{p + 1:04d}{firsts[p] + k + 1:03d}.jpg", p, k % 2)
            for p, n in enumerate(counts) for k in range(n)]


def cuhk01(c: dict[str, int]) -> list[Shot]:
    """`campus/PPPPCCC.jpg`, cameras 1-4 (1-2 view A, 3-4 view B)."""
    return [Shot(f"CUHK01/campus/{p:04d}{cam:03d}.jpg", p, (cam - 1) // 2) for p in range(1, c["ids"] + 1)
            for cam in range(1, 5)]


def cuhk02(c: dict[str, int]) -> list[Shot]:
    """`P{k}/cam{1,2}/PPPP_N.jpg`, two images per camera; every pair numbers its persons from 1."""
    shots, offset = [], 0
    for k in range(1, 6):
        n = c[f"p{k}_ids"]
        shots += [Shot(f"CUHK02/P{k}/cam{cam}/{p:04d}_{j}.jpg", offset + p, cam - 1)
                  for p in range(1, n + 1) for cam in (1, 2) for j in (1, 2)]
        offset += n
    return shots


def sensereid(c: dict[str, int]) -> list[Shot]:
    """`test_probe` / `test_gallery` `{pid:07d}_{camid:02d}.jpg`; the probe persons are the first gallery
    persons, and a person's gallery camid fields continue after its probe ones."""
    probe = spread(c["probe_images"], c["probe_ids"])
    shots = [Shot(f"SenseReID/test_probe/{p:07d}_{k:02d}.jpg", p, k % 2) for p, n in enumerate(probe)
             for k in range(n)]
    for p, n in enumerate(spread(c["gallery_images"], c["gallery_ids"])):
        first = probe[p] if p < len(probe) else 0
        shots += [Shot(f"SenseReID/test_gallery/{p:07d}_{k:02d}.jpg", p, k % 2) for k in range(first, first + n)]
    return shots


PLANS: dict[str, Callable[[dict[str, int]], list[Shot]]] = {
    "market1501": market1501, "cuhk_sysu": cuhk_sysu, "dukemtmc": dukemtmc, "msmt17": msmt17, "cuhk03": cuhk03,
    "viper": viper, "prid": prid, "grid": grid, "ilids": ilids, "cuhk01": cuhk01, "cuhk02": cuhk02,
    "sensereid": sensereid,
}
EXTRAS: dict[str, Callable[[Path, list[Shot], dict[str, int], int], None]] = {
    "msmt17": msmt17_lists, "grid": grid_partitions}
DATASETS = tuple(PLANS)  # a dataset's index keys its renderer style and random streams


# ---- writing ---------------------------------------------------------------------------------------------
@cache
def _style(seed: int, k: int):
    return sample_domain_style(SynthConfig(seed=seed), k)


Job = tuple[str, int, int, int, int, int, tuple[int, int], int]


def _render(job: Job) -> None:
    """Write one image (a worker's task): (path, seed, dataset index, look, camera, serial, (h, w), quality)."""
    path, seed, k, look, cam, serial, hw, quality = job
    style = _style(seed, k)
    person = sample_look(style, np.random.default_rng([seed, k, _LOOK, look]), look)
    img = render_image(person, style, style.cameras[cam % len(style.cameras)], hw,
                       np.random.default_rng([seed, k, _IMAGE, serial]))
    atomic_write(path, lambda tmp: img.save(tmp, format="JPEG", quality=quality, optimize=False))


def _marker(out: Path, name: str) -> Path:
    return out / MARKERS / f"{name}.json"


def _record(name: str, scale_name: str, scale: Scale, seed: int, counts: dict[str, int]) -> dict:
    return {"version": REHEARSAL_VERSION, "dataset": name, "scale": scale_name, "seed": seed, **asdict(scale),
            "counts": counts}


def _state(out: Path, record: dict) -> str:
    """'done', 'partial' (started with this record) or 'new'; another record in the marker is an error."""
    path = _marker(out, record["dataset"])
    if not path.is_file():
        return "new"
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        stored = {}
    done = stored.pop("complete", None)
    if stored != record:
        raise UserError(f"{out} holds a {record['dataset']} rehearsal tree of other settings ({path}); "
                        f"give --out a folder of its own for --scale {record['scale']} --seed {record['seed']}")
    return "done" if done else "partial"


def generate_rehearsal(out: str | Path, scale_name: str, *, seed: int = 0, jobs: int = 1, limit: int | None = None,
                       datasets: tuple[str, ...] = DATASETS, report: Callable[[str], None] = print) -> dict:
    """Write the rehearsal tree of `scale_name` under `out` with `jobs` processes; at most `limit` new images
    (then stop, unfinished datasets resume on the next call). Returns {"written", "seconds", "complete"}."""
    if scale_name not in SCALES:
        raise UserError(f"unknown rehearsal scale {scale_name!r}; use one of {', '.join(SCALES)}")
    if jobs < 1:
        raise UserError(f"--jobs {jobs}: give at least 1 process")
    unknown = [d for d in datasets if d not in PLANS]
    if unknown:
        raise UserError(f"unknown dataset(s) {', '.join(unknown)}; choose among {', '.join(DATASETS)}")
    scale, out = SCALES[scale_name], Path(out)
    pending: dict[str, tuple[dict, list[Shot], list]] = {}
    for name in datasets:
        counts = scaled_counts(name, scale.fraction)
        record = _record(name, scale_name, scale, seed, counts)
        state = _state(out, record)
        if state == "done":
            continue
        shots = PLANS[name](counts)
        top = out / Path(shots[0].rel).parts[0]
        if state == "new" and top.exists():
            raise UserError(f"{top} exists and is no rehearsal tree (real data?); give --out a folder of its own")
        atomic_write_json(_marker(out, name), {**record, "complete": False})
        k = DATASETS.index(name)
        todo = [(str(out / s.rel), seed, k, s.look, s.cam, serial, (scale.height, scale.width), scale.jpeg_quality)
                for serial, s in enumerate(shots, start=1) if not (out / s.rel).is_file()]
        pending[name] = (record, shots, todo)
    jobs_list = [job for _, _, todo in pending.values() for job in todo][:limit]
    t0 = time.perf_counter()
    for done in _run(jobs_list, jobs):
        if done and done % 2000 == 0:
            report(f"  {done} of {len(jobs_list)} images ({done / (time.perf_counter() - t0):.1f} img/s)")
    seconds = time.perf_counter() - t0
    complete = []
    for name, (record, shots, todo) in pending.items():
        if all((out / s.rel).is_file() for s in shots):
            if name in EXTRAS:
                EXTRAS[name](out, shots, record["counts"], seed)
            atomic_write_json(_marker(out, name), {**record, "complete": True})
            complete.append(name)
    return {"written": len(jobs_list), "seconds": seconds, "complete": complete,
            "unfinished": [n for n in pending if n not in complete]}


def _run(jobs_list: list[Job], processes: int) -> Iterator[int]:
    """Render every job, in this process or a pool of single-threaded ones; yields the running count."""
    if processes == 1 or len(jobs_list) < 2:
        for i, job in enumerate(jobs_list, start=1):
            _render(job)
            yield i
        return
    threads = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ.update({k: "1" for k in threads})  # fresh interpreters: one thread each (read at import)
    try:
        pool = multiprocessing.get_context("spawn").Pool(processes)
    finally:
        for k, v in threads.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    with pool:
        for i, _ in enumerate(pool.imap_unordered(_render, jobs_list, chunksize=16), start=1):
            yield i
