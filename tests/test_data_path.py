"""The cached data path against the PIL pipeline: same bytes after resize, same eval tensors,
same augmentation statistics, deterministic per seed; loader workers follow the CPUs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pad_bench.config import resolve_config
from pad_bench.data import loading
from pad_bench.data.cache import ImageCache, cache_key
from pad_bench.data.device_input import DeviceInput
from pad_bench.data.tensor_transforms import TensorTrainTransform, eval_normalize
from pad_bench.data import transforms
from pad_bench.errors import UserError

from conftest import tiny_sets

SIZE = (32, 16)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Three JPEGs of a different size than the input, with structure (gradients + a block)."""
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        yy, xx = np.mgrid[0:50, 0:23]
        arr = np.stack([yy * 5, xx * 11, (yy + xx) * 3], -1) % 256
        arr[10:20, 5:12] = rng.integers(0, 256, 3)
        path = root / f"{i}.jpg"
        Image.fromarray(arr.astype(np.uint8)).save(path, quality=90)
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("family", ["clip", "resnet"])
def test_cached_eval_tensors_equal_the_pil_pipeline(images, family):
    tf = transforms.test_transform(SIZE, family)
    cache = ImageCache(images, tf.transforms[0])
    cached = eval_normalize(tf)(torch.stack([cache[i] for i in range(len(images))]))
    pil = torch.stack([tf(Image.open(p).convert("RGB")) for p in images])
    torch.testing.assert_close(cached, pil, atol=1e-6, rtol=0)


def test_memory_mapped_cache_is_reused_and_rebuilt_when_the_data_changes(images, tmp_path):
    resize = transforms.test_transform(SIZE, "clip").transforms[0]
    first = ImageCache(images, resize, tmp_path)
    data = np.array(first.array)
    files = list(tmp_path.glob("*.npy"))
    assert len(files) == 1 and not list(tmp_path.glob(".*tmp"))
    np.testing.assert_array_equal(ImageCache(images, resize, tmp_path).array, data)  # read back, same bytes
    key = cache_key(images, resize)
    other_size = transforms.test_transform((16, 8), "clip").transforms[0]
    assert cache_key(images, other_size) != key
    Image.new("RGB", (23, 50), (255, 0, 0)).save(images[0])  # the data changes
    try:
        assert cache_key(images, resize) != key
        rebuilt = ImageCache(images, resize, tmp_path).array
        assert len(list(tmp_path.glob("*.npy"))) == 2
        assert not np.array_equal(rebuilt[0], data[0])
        np.testing.assert_array_equal(rebuilt[1:], data[1:])
    finally:
        rng = np.random.default_rng(0)  # leave the module fixture as it was for later tests
        yy, xx = np.mgrid[0:50, 0:23]
        arr = np.stack([yy * 5, xx * 11, (yy + xx) * 3], -1) % 256
        arr[10:20, 5:12] = rng.integers(0, 256, 3)
        Image.fromarray(arr.astype(np.uint8)).save(images[0], quality=90)


def _pil_samples(img: Image.Image, tf, n: int, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.stack([tf(img) for _ in range(n)])


def _tensor_samples(img: Image.Image, tf, n: int, seed: int) -> torch.Tensor:
    resized = torch.from_numpy(np.asarray(tf.transforms[0](img)).transpose(2, 0, 1).copy())
    gen = torch.Generator().manual_seed(seed)
    return TensorTrainTransform.from_compose(tf)(resized.expand(n, -1, -1, -1), gen)


@pytest.mark.parametrize("family", ["clip", "resnet"])
def test_augmentation_statistics_match_the_pil_pipeline(family):
    # A constant image: every pixel is `value` except padding (0 before normalisation) and erased
    # rectangles, so the fractions of padded and erased pixels and their positions can be compared.
    n, value = 3000, 200
    img = Image.new("RGB", (SIZE[1], SIZE[0]), (value,) * 3)
    tf = transforms.train_transform(SIZE, family, pad=4, erasing=0.5)
    mean, std = tf.transforms[5].mean[0], tf.transforms[5].std[0]
    stats = {}
    for name, draw in (("pil", _pil_samples), ("tensor", _tensor_samples)):
        x = draw(img, tf, n, seed=1)[:, 0]  # channel 0
        kept = torch.isclose(x, torch.tensor((value / 255 - mean) / std), atol=1e-5)
        padded = torch.isclose(x, torch.tensor((0 - mean) / std), atol=1e-5)
        erased = ~kept & ~padded
        stats[name] = {
            "kept": kept.float().mean(), "padded": padded.float().mean(),
            "erased_images": erased.flatten(1).any(1).float().mean(),
            "erased_area": erased.float().mean(),
            "pad_top_row": padded[:, 0].float().mean(), "pad_left_col": padded[:, :, 0].float().mean(),
        }
    # Tolerances ~4 standard errors at n = 3000: pixel fractions average many pixels per image,
    # the per-image rates are single Bernoulli draws.
    tolerance = {"kept": 0.012, "padded": 0.012, "erased_area": 0.012,
                 "erased_images": 0.045, "pad_top_row": 0.045, "pad_left_col": 0.045}
    for key, tol in tolerance.items():
        p, t = float(stats["pil"][key]), float(stats["tensor"][key])
        assert abs(p - t) < tol, f"{family} {key}: PIL {p:.4f} vs tensor {t:.4f}"
    assert 0.4 < float(stats["pil"]["erased_images"]) < 0.6  # the comparison sees real erasing


def test_flip_statistics_match_the_pil_pipeline():
    # Left half bright, right half dark; no padding or erasing: each sample is the image or its mirror.
    arr = np.zeros((SIZE[0], SIZE[1], 3), dtype=np.uint8)
    arr[:, : SIZE[1] // 2] = 255
    img = Image.fromarray(arr)
    tf = transforms.train_transform(SIZE, "clip", pad=0, erasing=0.0)
    for draw in (_pil_samples, _tensor_samples):
        x = draw(img, tf, 2000, seed=2)
        flipped = (x[:, 0, 0, -1] > x[:, 0, 0, 0]).float().mean()
        assert abs(float(flipped) - 0.5) < 0.04


def test_device_input_is_deterministic_per_seed_and_step():
    tf = transforms.train_transform(SIZE, "clip", pad=4, erasing=0.5)
    x = torch.randint(0, 256, (8, 3, *SIZE), dtype=torch.uint8)
    domains = torch.zeros(8, dtype=torch.long)

    def make(seed):
        return DeviceInput([TensorTrainTransform.from_compose(tf)], eval_normalize(transforms.test_transform(SIZE, "clip")), seed)

    a, b = make(0), make(0)
    torch.testing.assert_close(a.train_batch(x, domains, 5), b.train_batch(x, domains, 5), rtol=0, atol=0)
    assert not torch.equal(a.train_batch(x, domains, 5), a.train_batch(x, domains, 6))
    assert not torch.equal(a.train_batch(x, domains, 5), make(1).train_batch(x, domains, 5))


def test_unknown_train_step_has_no_tensor_version():
    from torchvision import transforms as T

    tf = transforms.train_transform(SIZE, "clip")
    tf.transforms.insert(1, T.ColorJitter(0.2))
    with pytest.raises(TypeError, match="ColorJitter"):
        TensorTrainTransform.from_compose(tf)


@pytest.mark.parametrize("cpus, expected", [({0, 1}, 2), (set(range(16)), 8)])
def test_default_loader_workers_follow_the_available_cpus(monkeypatch, cpus, expected):
    monkeypatch.setattr(loading.os, "sched_getaffinity", lambda pid: cpus, raising=False)
    assert loading.loader_workers({"num_workers": None, "data_path": "pil"}) == expected
    assert loading.loader_workers({"num_workers": 3, "data_path": "pil"}) == 3
    assert loading.loader_workers({"num_workers": None, "data_path": "cached"}) == 0


@pytest.mark.parametrize("key, value, match", [("train.num_workers", -1, "num_workers"),
                                                ("train.data_path", "gpu", "data_path")])
def test_bad_data_settings_are_user_errors(synth_root, key, value, match):
    with pytest.raises(UserError, match=match):
        resolve_config(benchmark="synth", strategy="finetune", sets=tiny_sets(synth_root, **{key: value}))


@pytest.mark.slow
def test_a_cached_run_trains_and_evaluates(synth_root, tmp_path):
    from pad_bench.run import runner

    cfg = resolve_config(benchmark="synth", strategy="finetune",
                         sets=tiny_sets(synth_root, **{"train.data_path": "cached",
                                                       "train.cache_dir": str(tmp_path / "cache")}))
    run_dir = runner.execute(cfg, tmp_path / "run", progress=False)
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert len(rows) > 1
    assert list((tmp_path / "cache").glob("*.npy"))  # the sets were decoded into the cache
