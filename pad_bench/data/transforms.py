"""Train and test transforms (PAD.md §5; BASELINES.md §1), with a configurable input size."""
from __future__ import annotations

from typing import Sequence

from torchvision import transforms as T

# CLIP-ReID/PAD normalise with mean = std = 0.5; the ResNet baselines use ImageNet statistics, and
# so does PAEMA's released data loader for its ImageNet ViT (although those weights were trained at 0.5).
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
NORMALIZATION = {
    "clip": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "resnet": IMAGENET,
    "vit": IMAGENET,
}


def _normalize(family: str) -> T.Normalize:
    mean, std = NORMALIZATION[family]
    return T.Normalize(mean, std)


def train_transform(size: Sequence[int], family: str, *, pad: int = 10, erasing: float = 0.5) -> T.Compose:
    size = tuple(size)
    return T.Compose([
        T.Resize(size, interpolation=T.InterpolationMode.BICUBIC),
        T.RandomHorizontalFlip(0.5),
        T.Pad(pad),
        T.RandomCrop(size),
        T.ToTensor(),
        _normalize(family),
        T.RandomErasing(p=erasing, value="random"),
    ])


def test_transform(size: Sequence[int], family: str) -> T.Compose:
    return T.Compose([
        T.Resize(tuple(size), interpolation=T.InterpolationMode.BILINEAR),
        T.ToTensor(),
        _normalize(family),
    ])
