"""DKP++: the rehearser's per-image kernels and colour resampling, its training, and the
rehearsed-view distillation."""
import pytest
import torch
import torch.nn.functional as F

from pad_bench.training.rehearser import (KERNEL_PARAMS, KernelPredictor, Normalisation, apply_kernels,
                                          resample_colours, train_rehearser)
from pad_bench.strategies.dkppp.strategy import rehearsal_kd
from pad_bench.training.affinity import cosine_affinity


def test_every_image_gets_its_own_kernel_as_in_the_released_decoder():
    g = torch.Generator().manual_seed(0)
    images, params = torch.randn(3, 3, 6, 5, generator=g), torch.randn(3, KERNEL_PARAMS, generator=g)
    expected = torch.cat([F.conv2d(img[None], p[:81].reshape(3, 3, 3, 3), p[81:], padding=1)
                          for img, p in zip(images, params)])
    torch.testing.assert_close(apply_kernels(images, params), expected)


def test_identity_kernels_leave_images_unchanged():
    identity = torch.zeros(3, 3, 3, 3)
    identity[range(3), range(3), 1, 1] = 1.0
    params = torch.cat([identity.flatten(), torch.zeros(3)])[None].repeat(2, 1)
    images = torch.rand(2, 3, 4, 4)
    torch.testing.assert_close(apply_kernels(images, params), images)


def test_colour_resampling_gives_each_image_the_drawn_channel_statistics():
    images = torch.rand(5, 3, 8, 4)
    out = resample_colours(images, torch.Generator().manual_seed(7))
    means, stds = images.mean(dim=(2, 3)), images.std(dim=(2, 3))
    g = torch.Generator().manual_seed(7)  # the same draws, in the same order: means, then stds
    new_means = means.mean(0) + means.std(0) * torch.randn(means.shape, generator=g)
    new_stds = stds.mean(0) + stds.std(0) * torch.randn(stds.shape, generator=g)
    torch.testing.assert_close(out.mean(dim=(2, 3)), new_means, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(dim=(2, 3)), new_stds.abs(), atol=1e-5, rtol=0)


def test_normalisation_round_trip():
    norm = Normalisation("resnet", torch.device("cpu"))
    x = torch.rand(2, 3, 4, 4)
    torch.testing.assert_close(norm.invert(norm(x)), x)
    torch.testing.assert_close(norm(x)[:, 0], (x[:, 0] - 0.485) / 0.229)


def test_rehearser_training_lowers_the_reconstruction_loss():
    torch.manual_seed(0)
    norm = Normalisation("resnet", torch.device("cpu"))
    batch = norm(torch.rand(4, 3, 32, 16))

    def batches():
        while True:
            yield batch

    net = KernelPredictor()
    first = train_rehearser(net, batches(), norm, iters=1, lr=2e-4)
    last = train_rehearser(net, batches(), norm, iters=30, lr=2e-3)
    assert last < first


def test_rehearsal_kd_is_kl_of_the_new_affinities_to_the_old_ones():
    g = torch.Generator().manual_seed(0)
    new = torch.randn(5, 6, generator=g, requires_grad=True)
    old = torch.randn(5, 6, generator=g)
    a_new, a_old = cosine_affinity(new, temperature=0.1), cosine_affinity(old, temperature=0.1)
    expected = (a_new * (a_new.log() - a_old.log())).sum() / 5
    loss = rehearsal_kd(new, old, 0.1)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert new.grad.abs().sum() > 0
    assert float(rehearsal_kd(old, old)) == pytest.approx(0.0, abs=1e-6)
