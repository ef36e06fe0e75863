"""The train and test transforms as batched tensor ops on the training device (`train.data_path: cached`).

Each is read off the torchvision pipeline of `transforms.py` (`from_compose`), so the two paths
cannot drift apart: the resize there fills the uint8 cache (`cache.py`); flip, pad-and-crop,
normalisation and random erasing run here on whole uint8 batches. The distributions are the PIL
pipeline's; the random draws are not the same numbers (they come from one generator per batch).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision import transforms as T

from .transforms import ReIDRandomErasing


@dataclass(frozen=True)
class Erasing:
    """Random erasing: with probability p, the first of `attempts` drawn rectangles that fits
    strictly inside the image (area U(scale)·H·W; aspect log-uniform or uniform in `ratio`) is
    filled with N(0, 1) noise (`fill` None) or the per-channel values `fill`."""

    p: float
    scale: tuple[float, float]
    ratio: tuple[float, float]
    log_ratio: bool
    attempts: int
    fill: tuple[float, ...] | None

    @classmethod
    def from_transform(cls, t) -> "Erasing":
        if isinstance(t, ReIDRandomErasing):
            return cls(t.p, (t.sl, t.sh), (t.r1, 1 / t.r1), False, 100, t.fill)
        if isinstance(t, T.RandomErasing):
            if t.value != "random":
                raise ValueError(f"tensor random erasing supports value='random' only, got {t.value!r}")
            return cls(t.p, tuple(t.scale), tuple(t.ratio), True, 10, None)  # torchvision tries 10 times
        raise TypeError(f"not a random-erasing transform: {t!r}")

    def __call__(self, x: Tensor, gen: torch.Generator) -> Tensor:
        b, c, height, width = x.shape
        dev = x.device
        u = torch.rand(b, self.attempts, 2, generator=gen, device=dev, dtype=torch.float64)
        area = height * width * (self.scale[0] + (self.scale[1] - self.scale[0]) * u[..., 0])
        lo, hi = self.ratio
        if self.log_ratio:
            aspect = torch.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * u[..., 1])
        else:
            aspect = lo + (hi - lo) * u[..., 1]
        h = torch.round(torch.sqrt(area * aspect)).long()
        w = torch.round(torch.sqrt(area / aspect)).long()
        fits = (h < height) & (w < width)
        pick = fits.long().argmax(1, keepdim=True)  # the first attempt that fits
        h, w = h.gather(1, pick)[:, 0], w.gather(1, pick)[:, 0]
        erase = fits.any(1) & (torch.rand(b, generator=gen, device=dev) < self.p)
        pos = torch.rand(b, 2, generator=gen, device=dev, dtype=torch.float64)
        top = (pos[:, 0] * (height - h + 1)).long()
        left = (pos[:, 1] * (width - w + 1)).long()
        rows = torch.arange(height, device=dev)[None, :]
        cols = torch.arange(width, device=dev)[None, :]
        inside_r = (rows >= top[:, None]) & (rows < (top + h)[:, None])
        inside_c = (cols >= left[:, None]) & (cols < (left + w)[:, None])
        mask = inside_r[:, :, None] & inside_c[:, None, :] & erase[:, None, None]  # (B, H, W)
        if self.fill is None:  # noise for the erased pixels only
            noise = torch.randn(c * int(mask.sum()), generator=gen, device=dev, dtype=x.dtype)
            x.masked_scatter_(mask[:, None].expand_as(x), noise)
        else:
            for ch in range(c):
                x[:, ch].masked_fill_(mask, self.fill[ch])
        return x


@dataclass(frozen=True)
class Normalize:
    """uint8 (B, C, H, W) -> float, as ToTensor + Normalize do it."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __call__(self, x: Tensor) -> Tensor:
        mean = torch.tensor(self.mean, device=x.device)[None, :, None, None]
        std = torch.tensor(self.std, device=x.device)[None, :, None, None]
        return x.float().div_(255).sub_(mean).div_(std)


@dataclass(frozen=True)
class TensorTrainTransform:
    """Flip, pad-and-crop (zero fill), normalise and random erasing of a uint8 batch already
    resized to the input size."""

    flip_p: float
    pad: int
    normalize: Normalize
    erasing: Erasing | None

    @classmethod
    def from_compose(cls, compose: T.Compose) -> "TensorTrainTransform":
        """Read the parameters off `transforms.train_transform`; unknown steps are an error."""
        flip_p, pad, norm, erasing = 0.0, 0, None, None
        for t in compose.transforms:
            if isinstance(t, T.RandomHorizontalFlip):
                flip_p = t.p
            elif isinstance(t, T.Pad):
                if t.padding_mode != "constant" or t.fill != 0 or not isinstance(t.padding, int):
                    raise ValueError(f"tensor pad-and-crop supports an int zero padding only, got {t!r}")
                pad = t.padding
            elif isinstance(t, T.Normalize):
                norm = Normalize(tuple(t.mean), tuple(t.std))
            elif isinstance(t, (T.RandomErasing, ReIDRandomErasing)):
                erasing = Erasing.from_transform(t)
            elif not isinstance(t, (T.Resize, T.RandomCrop, T.ToTensor)):  # resize: the cache's; crop: pad's
                raise TypeError(f"no tensor version of train transform step {t!r}")
        if norm is None:
            raise ValueError("the train transform has no Normalize step")
        return cls(flip_p, pad, norm, erasing)

    def __call__(self, x: Tensor, gen: torch.Generator) -> Tensor:
        """uint8 (B, C, H, W) -> augmented, normalised float (B, C, H, W)."""
        b, c, height, width = x.shape
        dev = x.device
        flip = torch.rand(b, generator=gen, device=dev) < self.flip_p
        # Flip, pad and crop in one gather: output pixel (r, q) of the crop at offset (i, j) of the
        # padded image is input pixel (r + i - pad, q + j - pad) of the (mirrored) image, 0 outside.
        off = torch.randint(0, 2 * self.pad + 1, (b, 2), generator=gen, device=dev) - self.pad
        rows = torch.arange(height, device=dev)[None, :] + off[:, :1]
        cols = torch.arange(width, device=dev)[None, :] + off[:, 1:]
        outside = ((rows < 0) | (rows >= height))[:, :, None] | ((cols < 0) | (cols >= width))[:, None, :]
        cols = torch.where(flip[:, None], width - 1 - cols, cols)
        x = x[torch.arange(b, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None],
              rows.clamp(0, height - 1)[:, None, :, None], cols.clamp(0, width - 1)[:, None, None, :]]
        x.masked_fill_(outside[:, None], 0)
        x = self.normalize(x)
        return self.erasing(x, gen) if self.erasing is not None else x


def eval_normalize(compose: T.Compose) -> Normalize:
    """The Normalize step of `transforms.test_transform` (its resize fills the cache)."""
    for t in compose.transforms:
        if isinstance(t, T.Normalize):
            return Normalize(tuple(t.mean), tuple(t.std))
        if not isinstance(t, (T.Resize, T.ToTensor)):
            raise TypeError(f"no tensor version of test transform step {t!r}")
    raise ValueError("the test transform has no Normalize step")
