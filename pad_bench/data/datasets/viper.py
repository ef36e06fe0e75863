"""VIPeR: `{cam_a,cam_b}/*.bmp`, 632 persons; the i-th sorted file of each camera is the same person."""
from __future__ import annotations

from pathlib import Path

from ...errors import DataFormatError
from .base import ImageRecord, list_images, register_dataset
from .unseen_split import TwoViewDataset


@register_dataset("viper")
class VIPeR(TwoViewDataset):
    name = "viper"
    root_aliases = ("viper/VIPeR", "VIPeR")
    required = ("cam_a", "cam_b")
    expected = {"query": (316, 316), "gallery": (316, 316)}
    how_to_get = "Download VIPeR.v1.0.zip and unpack it as <data-root>/viper/VIPeR/{cam_a,cam_b}."

    def read_views(self, root: Path) -> tuple[list[ImageRecord], list[ImageRecord]]:
        cam_a, cam_b = list_images(root / "cam_a"), list_images(root / "cam_b")
        if len(cam_a) != len(cam_b):
            raise DataFormatError(
                f"{root}: cam_a has {len(cam_a)} images but cam_b has {len(cam_b)}; VIPeR pairs the "
                f"i-th sorted image of each camera, so restore the missing files"
            )
        return (
            [ImageRecord(str(p), i + 1, 0) for i, p in enumerate(cam_a)],
            [ImageRecord(str(p), i + 1, 1) for i, p in enumerate(cam_b)],
        )
