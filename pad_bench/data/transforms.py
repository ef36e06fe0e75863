"""Train and test transforms of the two model families, with a configurable input size.

CLIP (PAD's pipeline, docs/methods/pad.md#data): mean = std = 0.5, bicubic train resize, bilinear
test resize, torchvision's random erasing with random values. ResNet (the LSTKC family's pipeline,
docs/methods/lstkc.md) and the ImageNet ViT (PAEMA's copy of that pipeline): ImageNet statistics,
bicubic train and test resize, and that code's own random erasing (`ReIDRandomErasing`).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor
from torchvision import transforms as T

IMAGENET_MEAN = (0.485, 0.456, 0.406)
# The ImageNet ViT (PAEMA) comes with the LSTKC-family data loader too, ImageNet statistics included
# (although those ViT weights were trained at mean = std = 0.5).
NORMALIZATION = {
    "clip": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "resnet": (IMAGENET_MEAN, (0.229, 0.224, 0.225)),
    "vit": (IMAGENET_MEAN, (0.229, 0.224, 0.225)),
}
TEST_RESIZE = {"clip": T.InterpolationMode.BILINEAR, "resnet": T.InterpolationMode.BICUBIC,
               "vit": T.InterpolationMode.BICUBIC}


class ReIDRandomErasing:
    """Random erasing as in the LSTKC family's code (Zhong et al.): with probability p, up to 100
    tries of a rectangle of area U(sl, sh)·H·W and aspect U(r1, 1/r1) that fits strictly inside the
    image, filled per channel with `fill`. The fill is written into the normalised tensor, as there
    (the ImageNet mean values, not the normalised mean). Draws from torch's RNG, so runs resume."""

    def __init__(self, p: float = 0.5, *, sl: float = 0.02, sh: float = 0.4, r1: float = 0.3,
                 fill: Sequence[float] = IMAGENET_MEAN):
        self.p, self.sl, self.sh, self.r1, self.fill = p, sl, sh, r1, tuple(fill)

    def __call__(self, img: Tensor) -> Tensor:
        if float(torch.rand(())) >= self.p:
            return img
        _, height, width = img.shape
        for _ in range(100):
            area = _uniform(self.sl, self.sh) * height * width
            aspect = _uniform(self.r1, 1 / self.r1)
            h, w = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
            if w < width and h < height:
                top = int(torch.randint(0, height - h + 1, ()))
                left = int(torch.randint(0, width - w + 1, ()))
                img = img.clone()
                img[:, top:top + h, left:left + w] = torch.tensor(self.fill[: img.shape[0]])[:, None, None]
                return img
        return img


def _uniform(lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand(()))


def _normalize(family: str) -> T.Normalize:
    mean, std = NORMALIZATION[family]
    return T.Normalize(mean, std)


def _erasing(family: str, p: float):
    return ReIDRandomErasing(p) if family in ("resnet", "vit") else T.RandomErasing(p=p, value="random")


def train_transform(size: Sequence[int], family: str, *, pad: int = 10, erasing: float = 0.5) -> T.Compose:
    size = tuple(size)
    return T.Compose([
        T.Resize(size, interpolation=T.InterpolationMode.BICUBIC),
        T.RandomHorizontalFlip(0.5),
        T.Pad(pad),
        T.RandomCrop(size),
        T.ToTensor(),
        _normalize(family),
        _erasing(family, erasing),
    ])


def test_transform(size: Sequence[int], family: str) -> T.Compose:
    return T.Compose([
        T.Resize(tuple(size), interpolation=TEST_RESIZE[family]),
        T.ToTensor(),
        _normalize(family),
    ])
