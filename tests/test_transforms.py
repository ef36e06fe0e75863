"""Transforms of the ResNet family against the LSTKC family's code: bicubic resizes, its random erasing."""
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import functional as TF

from pad_bench.data import transforms
from pad_bench.data.transforms import ReIDRandomErasing

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _image(h: int = 40, w: int = 20) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_resnet_test_resize_is_bicubic_clip_bilinear():
    img = _image()
    for family, resample, mean, std in (("resnet", Image.BICUBIC, MEAN, STD),
                                        ("clip", Image.BILINEAR, (0.5,) * 3, (0.5,) * 3)):
        # the reference: T.Resize((256, 128), interpolation=3) on a PIL image = PIL's own bicubic resize
        expected = TF.normalize(TF.to_tensor(img.resize((8, 16), resample)), mean, std)
        assert torch.allclose(transforms.test_transform((16, 8), family)(img), expected, atol=1e-6)


def _erase_zeros(seed: int, p: float = 1.0) -> torch.Tensor:
    torch.manual_seed(seed)
    return ReIDRandomErasing(p)(torch.zeros(3, 256, 128))


def test_erasing_fills_a_rectangle_with_the_imagenet_mean_values():
    out = _erase_zeros(0)
    mask = out[0] != 0
    rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
    h, w = len(rows), len(cols)
    assert mask.sum() == h * w and rows[-1] - rows[0] + 1 == h and cols[-1] - cols[0] + 1 == w  # one rectangle
    for c, v in enumerate(MEAN):  # written into the normalised tensor, as the reference does
        assert torch.all(out[c][mask] == torch.tensor(v))
    assert torch.equal(_erase_zeros(0, p=0.0), torch.zeros(3, 256, 128))


def test_erasing_area_reaches_0_4_of_the_image():
    # reference: target area U(0.02, 0.4) x H x W; torchvision's RandomErasing stops at 0.33
    fractions = [float((_erase_zeros(s)[0] != 0).float().mean()) for s in range(300)]
    assert min(fractions) > 0.015 and max(fractions) <= 0.41
    assert sum(f > 0.33 for f in fractions) >= 10


@pytest.mark.parametrize("family, kind", [("resnet", ReIDRandomErasing), ("clip", None)])
def test_train_transform_uses_the_family_erasing(family, kind):
    last = transforms.train_transform((16, 8), family, erasing=0.6).transforms[-1]
    if kind is None:
        assert type(last).__name__ == "RandomErasing" and last.p == 0.6
    else:
        assert isinstance(last, kind) and last.p == 0.6 and last.sh == 0.4
