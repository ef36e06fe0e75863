"""Tiny folder trees in the exact naming of the 7 unseen sets (docs/protocol.md#dataset-folders), for tests.

Each `make_<set>(data_root, alias=...)` writes 8x4 images under `data_root/alias` and returns a
dict describing what it wrote: "root" (that folder), "images" (a (path, pid, camera) triple per
file: the person it shows and the camera it was written for, as the set's naming means them) and
the facts tests need to compute expected counts.
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image


def write_image(path: Path, shade: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 8), (shade % 256, 40, 90)).save(path)
    return path


def make_viper(data_root: Path, alias: str = "viper/VIPeR", n_ids: int = 8) -> dict:
    """cam_a / cam_b `NNN_angle.bmp`; numbers skip values as in the real set, pairing is by sorted index."""
    root = Path(data_root) / alias
    images = []
    for i in range(n_ids):
        number = 3 * i + 1
        images += [(write_image(root / "cam_a" / f"{number:03d}_{45 * (i % 3)}.bmp", i), i + 1, 0),
                   (write_image(root / "cam_b" / f"{number:03d}_{90 + 45 * (i % 2)}.bmp", i), i + 1, 1)]
    return {"root": root, "images": images, "n_ids": n_ids}


def make_prid(data_root: Path, alias: str = "prid2011/single_shot") -> dict:
    """Persons 1-8 in both cameras, plus cam_a-only and cam_b-only numbers beyond 200 (201 and 202
    exist in both cameras but are different people)."""
    root = Path(data_root) / alias
    shared = list(range(1, 9))
    cam_a_only = [201, 202, 385]
    cam_b_only = [201, 202, 300, 385, 386, 500, 749]
    images = [(write_image(root / cam / f"person_{pid:04d}.png", pid), pid, camid)
              for camid, (cam, pids) in enumerate((("cam_a", shared + cam_a_only), ("cam_b", shared + cam_b_only)))
              for pid in pids]
    return {"root": root, "images": images, "shared": shared, "cam_a_only": cam_a_only, "cam_b_only": cam_b_only}


def grid_partitions(n_ids: int, n_partitions: int = 10) -> list[list[int]]:
    """Partition s trains IDs s+1 .. s+n_ids//2 (wrapping around)."""
    return [sorted((s + j) % n_ids + 1 for j in range(n_ids // 2)) for s in range(n_partitions)]


def write_grid_mat(path: Path, partitions: list[list[int]]) -> None:
    """`trainIdxAll`: a 1xN cell of structs whose 3rd field holds the train IDs (MATLAB doubles)."""
    import numpy as np
    from scipy.io import savemat

    cells = np.empty((1, len(partitions)), dtype=object)
    for s, ids in enumerate(partitions):
        cells[0, s] = {"trainIdx": np.array([[s + 1.0]]), "testIdx": np.array([[0.0]]),
                       "idx": np.array([ids], dtype=float)}
    savemat(str(path), {"trainIdxAll": cells})


def make_grid(data_root: Path, alias: str = "grid/underground_reid", n_ids: int = 8,
              n_distractors: int = 3) -> dict:
    """probe / gallery `PPPP_C_frame_x_y_w_h.jpeg` for IDs 1..n_ids, `0000_*` distractors in the
    gallery, and `features_and_partitions.mat` with 10 partitions."""
    root = Path(data_root) / alias
    images = []  # camera 0: probe, 1: gallery
    for pid in range(1, n_ids + 1):
        probe = root / "probe" / f"{pid:04d}_{1 + pid % 4}_2500{pid}_107_32_106_221.jpeg"
        gallery = root / "gallery" / f"{pid:04d}_{5 + pid % 3}_2600{pid}_98_40_101_230.jpeg"
        images += [(write_image(probe, pid), pid, 0), (write_image(gallery, pid), pid, 1)]
    for k in range(n_distractors):
        images.append((write_image(root / "gallery" / f"0000_{1 + k % 8}_2700{k}_50_20_99_210.jpeg", 200 + k), 0, 1))
    partitions = grid_partitions(n_ids)
    write_grid_mat(root / "features_and_partitions.mat", partitions)
    return {"root": root, "images": images, "pids": list(range(1, n_ids + 1)), "partitions": partitions,
            "n_distractors": n_distractors}


def make_ilids(data_root: Path, alias: str = "i-LIDS_Pedestrian/Persons",
               images_per_id: tuple[int, ...] = (2, 3, 4, 2, 3, 4, 2, 1)) -> dict:
    """`PPPPSSS.jpg` (pid, then a running image number); the last ID has a single image by default."""
    root = Path(data_root) / alias
    seq = 1
    images = []
    for pid, n in enumerate(images_per_id, start=1):
        for _ in range(n):
            images.append((write_image(root / f"{pid:04d}{seq:03d}.jpg", pid), pid, 0))
            seq += 1
    return {"root": root, "images": images, "images_per_id": dict(enumerate(images_per_id, start=1))}


def make_cuhk01(data_root: Path, alias: str = "CUHK01", n_ids: int = 7) -> dict:
    """`campus/PPPPCCC.png`, cameras 001-004 per person (1-2 = view A, 3-4 = view B)."""
    root = Path(data_root) / alias
    images = [(write_image(root / "campus" / f"{pid:04d}{cam:03d}.png", pid), pid, cam)
              for pid in range(1, n_ids + 1) for cam in range(1, 5)]
    return {"root": root, "images": images, "n_ids": n_ids}


def make_cuhk02(data_root: Path, alias: str = "CUHK02", train_ids_per_pair: int = 2, n_test: int = 5,
                per_cam: int = 2, train_pairs: tuple[str, ...] = ("P1", "P2", "P3", "P4")) -> dict:
    """`P{k}/{cam1,cam2}/PPPP_N.png`; every pair numbers its persons from 1 (different people).
    An image's camera is 1 or 2, its pair the name of its folder's parent."""
    root = Path(data_root) / alias
    pairs = [(p, train_ids_per_pair) for p in train_pairs] + [("P5", n_test)]
    images = [(write_image(root / pair / f"cam{cam}" / f"{pid:04d}_{k + 1}.png", pid), pid, cam)
              for pair, n_ids in pairs for cam in (1, 2) for pid in range(1, n_ids + 1) for k in range(per_cam)]
    return {"root": root, "images": images, "n_train_ids": train_ids_per_pair * len(train_pairs),
            "n_test": n_test, "per_cam": per_cam}


def make_sensereid(data_root: Path, alias: str = "SenseReID") -> dict:
    """test_probe / test_gallery `PPPPPPP_CC.jpg`; gallery has extra IDs, and probe and gallery
    images of one person may carry the same camid field."""
    root = Path(data_root) / alias
    probe = {1: [0, 1], 2: [0], 3: [2, 3]}
    gallery = {1: [0], 2: [0, 1], 3: [4], 4: [0], 5: [0, 1]}
    images = [(write_image(root / folder / f"{pid:07d}_{cam:02d}.jpg", pid), pid, cam)
              for folder, spec in (("test_probe", probe), ("test_gallery", gallery))
              for pid, cams in spec.items() for cam in cams]
    return {"root": root, "images": images, "probe": probe, "gallery": gallery}
