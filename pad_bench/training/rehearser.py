"""The distribution rehearser of DASK (AAAI 2025), reused by DKP++: a small network, trained on a
domain while it is current, that predicts one 3×3 convolution per image mapping an image of any colour distribution back to that
domain's (normalised) appearance. In later steps it turns current images into pseudo-old ones.

As released: MobileNetV3-small features, global max pooling and a two-layer MLP predict the kernel;
training views have their per-image channel means/stds re-drawn from the batch's distribution and
the L1 loss compares the decoded image with the normalised original; Adam(2e-4, betas (0, 0.999)).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.transforms import NORMALIZATION
from ..models.zoo import read_state_dict

KERNEL_PARAMS = 3 * 3 * 3 * 3 + 3  # one 3->3 channel 3x3 convolution and its bias


class KernelPredictor(nn.Module):
    """Image (B, 3, H, W) -> per-image convolution parameters (B, 84)."""

    def __init__(self):
        super().__init__()
        from torchvision.models import mobilenet_v3_small

        net = mobilenet_v3_small(weights=None)
        self.features = net.features
        dim = net.classifier[0].in_features
        self.head = nn.Sequential(nn.Linear(dim, dim // 2), nn.ReLU(), nn.Linear(dim // 2, KERNEL_PARAMS))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(F.adaptive_max_pool2d(self.features(x), 1).flatten(1))

    def load_backbone(self, path: str) -> None:
        """ImageNet MobileNetV3-small weights (a torchvision state dict) for the feature extractor."""
        sd = {k.removeprefix("features."): t for k, t in read_state_dict(path).items() if k.startswith("features.")}
        self.features.load_state_dict(sd)


def apply_kernels(images: Tensor, params: Tensor) -> Tensor:
    """Convolve every image (B, 3, H, W) with its own 3×3 kernel and bias from params (B, 84)."""
    b, c, h, w = images.shape
    weight = params[:, :KERNEL_PARAMS - 3].reshape(b * 3, 3, 3, 3)
    bias = params[:, KERNEL_PARAMS - 3:].reshape(b * 3)
    out = F.conv2d(images.reshape(1, b * c, h, w), weight, bias, padding=1, groups=b)
    return out.reshape(b, 3, h, w)


def resample_colours(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Re-draw each image's per-channel mean and std from normals fitted to the batch's means and
    stds, and shift/scale the image to them (the released color_transfer_resample, RGB space)."""
    means, stds = images.mean(dim=(2, 3)), images.std(dim=(2, 3))

    def redraw(x: Tensor) -> Tensor:
        return (x.mean(0) + x.std(0) * torch.randn(x.shape, generator=generator, device=x.device))[..., None, None]

    new_means, new_stds = redraw(means), redraw(stds)
    return (images - means[..., None, None]) / stds.clamp_min(1e-6)[..., None, None] * new_stds + new_means


class Normalisation:
    """The input normalisation of a model family, both ways."""

    def __init__(self, family: str, device: torch.device):
        mean, std = NORMALIZATION[family]
        self.mean = torch.tensor(mean, device=device)[:, None, None]
        self.std = torch.tensor(std, device=device)[:, None, None]

    def __call__(self, raw: Tensor) -> Tensor:
        return (raw - self.mean) / self.std

    def invert(self, x: Tensor) -> Tensor:
        return x * self.std + self.mean


def train_rehearser(net: KernelPredictor, batches, norm: Normalisation, *, iters: int, lr: float) -> float:
    """`iters` steps of the reconstruction loss over an endless iterator of normalised training
    batches; returns the last loss."""
    opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.0, 0.999), eps=1e-8, weight_decay=0.0)
    net.train()
    loss = torch.zeros(())
    for _ in range(iters):
        raw = norm.invert(next(batches))
        moved = resample_colours(raw)
        loss = F.l1_loss(apply_kernels(moved, net(moved)), norm(raw))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return float(loss.detach())

