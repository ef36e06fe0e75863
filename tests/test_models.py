"""The model zoo: every registered model builds; taps, prompts, text encoding, weights formats, heads."""
from __future__ import annotations

import subprocess
import sys
import warnings

import open_clip
import pytest
import torch
import torch.nn.functional as F
import torchvision
from safetensors.torch import save_file
from torch import nn

from pad_bench.errors import UserError
from pad_bench.models import create_model, list_models

TINY = ("clip-tiny", "resnet-tiny")
BIG = ("clip-vit-b16", "resnet50")


@pytest.fixture(autouse=True)
def _no_weights_env(monkeypatch):
    monkeypatch.delenv("PAD_BENCH_CLIP_WEIGHTS", raising=False)
    monkeypatch.delenv("PAD_BENCH_RESNET50_WEIGHTS", raising=False)
    torch.manual_seed(0)


def n_params(params) -> int:
    return sum(p.numel() for p in params)


def images(model, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, *model.image_size)


def test_registry_lists_every_config():
    assert set(TINY + BIG) <= set(list_models())


def test_list_models_does_not_import_torch():
    code = "import sys, pad_bench.models as m; m.list_models(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", sorted(list_models()))
def test_every_model_builds(name):
    model = create_model(name, num_classes=7, weights="random")
    bb = model.backbone
    assert model.num_classes == 7
    assert set(model.necks) == set(model.classifiers) == set(bb.head_taps)
    assert set(bb.embedding_taps) <= set(bb.tap_dims) and set(bb.triplet_taps) <= set(bb.tap_dims)
    for tap in bb.head_taps:
        assert model.classifiers[tap].weight.shape == (7, bb.tap_dims[tap])
        assert model.classifiers[tap].bias is None
        assert not model.necks[tap].bias.requires_grad
    if name in TINY:
        model.eval()
        out = model(images(model))
        for tap, dim in bb.tap_dims.items():
            assert out[tap].shape == (2, dim)
        assert set(out["logits"]) == set(bb.head_taps)
        assert all(out["logits"][t].shape == (2, 7) for t in bb.head_taps)
        emb_dim = sum(bb.tap_dims[t] for t in bb.embedding_taps)
        assert out["embedding"].shape == (2, emb_dim)
        torch.testing.assert_close(out["embedding"].norm(dim=1), torch.ones(2))
        pre_bn = torch.cat([out[t] for t in bb.embedding_taps], dim=1)
        torch.testing.assert_close(out["embedding"], F.normalize(pre_bn, dim=1))


def test_vit_b16_parameter_counts():
    # docs/models.md#sizes: image tower 86.14 M, text tower 63.43 M (ViT-B-16-quickgelu at 256x128).
    clip = create_model("clip-vit-b16", weights="random", text_tower=True).backbone.clip
    image = n_params(p for n, p in clip.named_parameters() if n.startswith("visual."))
    text = n_params(p for n, p in clip.named_parameters() if not n.startswith("visual."))
    assert round(image / 1e6, 2) == 86.14
    assert round(text / 1e6, 2) == 63.43
    assert tuple(clip.visual.positional_embedding.shape) == (129, 768)
    assert isinstance(clip.visual.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)


def test_resnet50_is_torchvision_resnet50_without_fc():
    bb = create_model("resnet50", weights="random").backbone
    reference = torchvision.models.resnet50(weights=None)
    expected = n_params(reference.parameters()) - n_params(reference.fc.parameters())  # GeM p fixed: no parameter
    assert n_params(bb.parameters()) == expected
    assert bb.pool.p == 3.0
    learnable = create_model("resnet50", weights="random", gem_learnable=True).backbone
    assert n_params(learnable.parameters()) == expected + 1 and learnable.pool.p.requires_grad
    assert bb.tap_dims == {"gem": 2048}
    assert bb.body.layer4[0].conv2.stride == (1, 1) and bb.body.layer4[0].downsample[0].stride == (1, 1)


def test_clip_taps_match_open_clip():
    bb = create_model("clip-tiny").backbone.eval()
    x = torch.randn(3, 3, 64, 32)
    with torch.no_grad():
        taps = bb(x)
        visual = bb.clip.visual
        n = len(bb.blocks)
        ref = visual.forward_intermediates(x, indices=[n - 2, n - 1], output_fmt="NLC", output_extra_tokens=True)
        torch.testing.assert_close(taps["proj"], visual(x))
        torch.testing.assert_close(taps["proj"], ref["image_features"])
        torch.testing.assert_close(taps["x11"], ref["image_intermediates_prefix"][0][:, 0])
        torch.testing.assert_close(taps["x12"], visual.ln_post(ref["image_intermediates_prefix"][1][:, 0]))
    assert not torch.allclose(taps["x11"], taps["x12"])


def test_prompter_inserts_and_drops_tokens():
    model = create_model("clip-tiny", num_classes=4).eval()
    x = images(model, 3)
    tokens = 1 + 8 * 4
    prompts = nn.Parameter(torch.randn(len(model.backbone.blocks), 5, 64))
    seen = []

    def prompter(i, block_input):
        seen.append((i, tuple(block_input.shape)))
        return prompts[i].expand(block_input.shape[0], -1, -1)

    plain = model(x)
    prompted = model(x, prompter=prompter)
    assert seen == [(i, (3, tokens, 64)) for i in range(3)]
    for tap in ("x11", "x12", "proj", "embedding"):
        assert prompted[tap].shape == plain[tap].shape
        assert not torch.allclose(prompted[tap], plain[tap])
    prompted["proj"].sum().backward()
    assert prompts.grad is not None and prompts.grad.abs().sum() > 0
    none_prompter = model(x, prompter=lambda i, t: None)
    torch.testing.assert_close(none_prompter["embedding"], plain["embedding"])


def test_text_side_matches_encode_text_and_is_frozen():
    bb = create_model("clip-tiny", text_tower=True).backbone
    tokens = bb.tokenize(["A photo of a X X X X person.", "a person in a red coat"])
    # docs/models.md#tokenizer: SOT, "a photo of a", 4 x "x", "person", ".", EOT, padding
    assert tokens[0, :13].tolist() == [49406, 320, 1125, 539, 320, 343, 343, 343, 343, 2533, 269, 49407, 0]
    assert tokens.shape == (2, 77)
    with torch.no_grad():
        ours = bb.encode_prompt_embeddings(bb.embed_tokens(tokens), tokens)
        torch.testing.assert_close(ours, bb.clip.encode_text(tokens))
    assert ours.shape == (2, 32)
    text_params = [p for n, p in bb.clip.named_parameters() if not n.startswith("visual.")]
    assert text_params and not any(p.requires_grad for p in text_params)
    assert all(k.startswith("clip.visual.") for k in bb.image_encoder_state_dict())


def test_image_only_clip_has_no_text_tower():
    bb = create_model("clip-tiny").backbone
    assert all(n.startswith("visual.") for n, _ in bb.clip.named_parameters())
    with pytest.raises(UserError, match="text_tower=True"):
        bb.tokenize(["a person"])


def test_set_requires_grad_by_part():
    bb = create_model("clip-tiny").backbone
    bb.requires_grad_(False)
    bb.set_requires_grad(2, True)
    bb.set_requires_grad("embeddings", True)
    trainable = {n for n, p in bb.named_parameters() if p.requires_grad}
    assert trainable
    assert all(n.startswith(("clip.visual.transformer.resblocks.2.", "clip.visual.conv1", "clip.visual.class_embedding",
                             "clip.visual.positional_embedding", "clip.visual.ln_pre")) for n in trainable)
    assert "clip.visual.class_embedding" in trainable and "clip.visual.positional_embedding" in trainable
    assert not bb.clip.visual.proj.requires_grad and not bb.clip.visual.ln_post.weight.requires_grad
    with pytest.raises(UserError, match="ln_post"):
        bb.set_requires_grad("head", True)
    with pytest.raises(UserError, match="out of range"):
        bb.set_requires_grad(3, True)


# ---- weights files ----------------------------------------------------------------------------


def _assert_same_weights(model, reference: dict):
    loaded = model.backbone.clip.state_dict()
    assert loaded.keys() == reference.keys()
    for k, t in reference.items():
        torch.testing.assert_close(loaded[k], t, rtol=0, atol=0, msg=k)


class _Holder(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _torchscript_archive(state_dict: dict, path):
    """An OpenAI-style TorchScript file: parameters under the state-dict names plus three int entries."""
    root = _Holder()
    for key, tensor in state_dict.items():
        *parents, leaf = key.split(".")
        module = root
        for name in parents:
            if not hasattr(module, name):
                module.add_module(name, _Holder())
            module = getattr(module, name)
        module.register_parameter(leaf, nn.Parameter(tensor.half(), requires_grad=False))
    for extra, value in (("input_resolution", 64), ("context_length", 77), ("vocab_size", 49408)):
        root.register_buffer(extra, torch.tensor(value))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated; OpenAI's file is TorchScript
        torch.jit.save(torch.jit.script(root), str(path))


@pytest.mark.parametrize("fmt", ["safetensors", "open_clip_pt", "torchscript"])
def test_clip_weights_round_trip(fmt, tmp_path):
    source = create_model("clip-tiny", text_tower=True).backbone.clip.state_dict()
    if fmt == "safetensors":
        path = tmp_path / "w.safetensors"
        save_file({k: t.contiguous() for k, t in source.items()}, str(path))
    elif fmt == "open_clip_pt":
        path = tmp_path / "w.pt"
        torch.save({"epoch": 3, "state_dict": {f"module.{k}": t for k, t in source.items()}}, path)
    else:
        path = tmp_path / "ViT-tiny.pt"
        source = {k: t.half().float() for k, t in source.items()}  # OpenAI ships fp16; loading casts to fp32
        _torchscript_archive(source, path)
    full = create_model("clip-tiny", weights=str(path), text_tower=True)
    _assert_same_weights(full, source)
    assert all(t.dtype == torch.float32 for t in full.backbone.clip.state_dict().values())
    image_only = create_model("clip-tiny", weights=str(path))
    _assert_same_weights(image_only, {k: t for k, t in source.items() if k.startswith("visual.")})


def test_pos_embed_resized_bilinear_from_square_grid(tmp_path):
    square = create_model("clip-tiny", image_size=(56, 56)).backbone.clip.state_dict()  # 7x7 grid
    path = tmp_path / "square.safetensors"
    save_file({k: t.contiguous() for k, t in square.items()}, str(path))
    model = create_model("clip-tiny", weights=str(path))  # 64x32 -> 8x4 grid
    pos = square["visual.positional_embedding"]
    grid = pos[1:].reshape(1, 7, 7, -1).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(8, 4), mode="bilinear", align_corners=False, antialias=False)
    expected = torch.cat([pos[:1], expected.permute(0, 2, 3, 1).reshape(32, -1)])
    loaded = model.backbone.clip.visual.positional_embedding.detach()
    assert loaded.shape == (33, 64)
    torch.testing.assert_close(loaded, expected)
    torch.testing.assert_close(model.backbone.clip.visual.conv1.weight.detach(), square["visual.conv1.weight"])
    bicubic = F.interpolate(grid, size=(8, 4), mode="bicubic", align_corners=False, antialias=True)
    assert not torch.allclose(loaded[1:], bicubic.permute(0, 2, 3, 1).reshape(32, -1))


def test_resnet_weights_file_and_layer3_cut(tmp_path):
    source = create_model("resnet-tiny").backbone.body.state_dict()
    imagenet_like = {**source, "fc.weight": torch.randn(1000, 512), "fc.bias": torch.randn(1000)}
    path = tmp_path / "resnet.pth"
    torch.save(imagenet_like, path)
    loaded = create_model("resnet-tiny", weights=str(path)).backbone.body.state_dict()
    assert all(torch.equal(loaded[k], t) for k, t in source.items())
    cut = create_model("resnet-tiny", weights=str(path), cut_at="layer3")
    assert cut.backbone.tap_dims == {"gem": 256}
    assert not hasattr(cut.backbone.body, "layer4")
    assert torch.equal(cut.backbone.body.layer3[0].conv1.weight, source["layer3.0.conv1.weight"])
    x = torch.randn(2, 3, 64, 32)
    assert cut.backbone.forward_map(x).shape == (2, 256, 4, 2)  # stride 16
    full = create_model("resnet-tiny")
    assert full.backbone.forward_map(x).shape == (2, 512, 4, 2)  # last stride 1: still 16
    assert create_model("resnet-tiny", last_stride=2).backbone.forward_map(x).shape == (2, 512, 2, 1)


def test_missing_vit_weights_explains_where_to_get_them():
    with pytest.raises(UserError) as err:
        create_model("clip-vit-b16")
    msg = str(err.value)
    for needle in ("ViT-B-16.pt", "safetensors", "model.weights=PATH", "PAD_BENCH_CLIP_WEIGHTS", "download"):
        assert needle in msg
    assert "\n" not in msg


def test_resnet50_needs_imagenet_weights_unless_random_is_asked_for(tmp_path, monkeypatch):
    with pytest.raises(UserError) as err:
        create_model("resnet50")
    msg = str(err.value)
    for needle in ("resnet50-0676ba61.pth", "IMAGENET1K_V1", "model.weights=PATH", "PAD_BENCH_RESNET50_WEIGHTS",
                   "model.weights=random"):
        assert needle in msg
    assert "\n" not in msg
    assert create_model("resnet50", weights="random").spec["weights"] == "random"
    assert create_model("resnet-tiny").spec["weights"] == "random"  # tiny models need no file
    # a torchvision-format state dict (the layout of resnet50-0676ba61.pth) loads from the env variable
    reference = torchvision.models.resnet50(weights=None).state_dict()
    path = tmp_path / "resnet50-0676ba61.pth"
    torch.save(reference, path)
    monkeypatch.setenv("PAD_BENCH_RESNET50_WEIGHTS", str(path))
    model = create_model("resnet50")
    assert model.spec["weights"] == str(path.resolve())
    body = model.backbone.body.state_dict()
    assert all(torch.equal(body[k], t) for k, t in reference.items() if not k.startswith("fc."))


def test_gem_p_is_fixed_at_3_by_default():
    x = torch.rand(2, 5, 4, 3) + 0.1
    expected = x.pow(3).mean(dim=(2, 3)).pow(1 / 3)  # the reference: adaptive_avg_pool2d(x^3)^(1/3)
    for name in ("resnet-tiny", "resnet50"):
        pool = create_model(name, weights="random").backbone.pool
        assert pool.p == 3.0 and not list(pool.parameters())
        torch.testing.assert_close(pool(x), expected)


def test_bad_weights_files_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("PAD_BENCH_CLIP_WEIGHTS", str(tmp_path / "nowhere.pt"))
    with pytest.raises(UserError, match="nowhere.pt"):
        create_model("clip-vit-b16")
    for name in ("broken.pt", "broken.safetensors"):
        (tmp_path / name).write_bytes(b"not a checkpoint at all")
        with pytest.raises(UserError, match=name):
            create_model("clip-tiny", weights=str(tmp_path / name))
    with pytest.raises(UserError, match="missing.pth"):
        create_model("resnet-tiny", weights=str(tmp_path / "missing.pth"))
    wrong = tmp_path / "wrong.pth"
    torch.save(create_model("resnet-tiny").backbone.body.state_dict(), wrong)
    with pytest.raises(UserError, match="wrong.pth.*does not fit"):
        create_model("clip-tiny", weights=str(wrong))


# ---- heads ------------------------------------------------------------------------------------


def test_grow_classifier_copies_old_rows():
    model = create_model("clip-tiny", num_classes=3)
    old = {t: c.weight.detach().clone() for t, c in model.classifiers.items()}
    new_rows = torch.randn(2, 64)
    model.grow_classifier(2, init={"x12": new_rows})
    assert model.num_classes == 5
    for tap, weight in model.classifiers.items():
        assert torch.equal(weight.weight[:3], old[tap])
    assert torch.equal(model.classifiers["x12"].weight[3:], new_rows)
    fresh = model.classifiers["proj"].weight[3:]
    assert 0 < fresh.abs().max() < 0.01
    assert model.eval()(images(model))["logits"]["proj"].shape == (2, 5)
    with pytest.raises(UserError, match="shape"):
        model.grow_classifier(1, init={"x12": torch.randn(2, 64)})
    with pytest.raises(UserError, match="unknown tap"):
        model.grow_classifier(1, init={"gem": torch.randn(1, 64)})
    assert model.num_classes == 5


def test_zero_classes_gives_no_logits_and_can_grow():
    model = create_model("resnet-tiny").eval()
    assert model.num_classes == 0 and model(images(model))["logits"] == {}
    model.grow_classifier(4)
    assert model.num_classes == 4
    model.reset_classifier(6)
    assert model.classifiers["gem"].weight.shape == (6, 512)


def test_resize_for_state_dict_loads_a_later_checkpoint():
    later = create_model("resnet-tiny", num_classes=4)
    later.grow_classifier(3)
    state = later.state_dict()
    resumed = create_model("resnet-tiny", num_classes=4)
    resumed.resize_for_state_dict(state)
    resumed.load_state_dict(state)
    assert resumed.num_classes == 7
    x = images(resumed)
    torch.testing.assert_close(resumed.eval()(x)["logits"]["gem"], later.eval()(x)["logits"]["gem"])


def test_image_encoder_state_dict_is_enough_for_embeddings():
    trained = create_model("clip-tiny", num_classes=5, text_tower=True).eval()
    sd = trained.image_encoder_state_dict()
    assert not any(k.startswith("classifiers.") for k in sd)
    assert any(k.startswith("necks.") for k in sd)
    assert all(k.startswith(("backbone.clip.visual.", "necks.")) for k in sd)
    fresh = create_model("clip-tiny").eval()
    missing, unexpected = fresh.load_state_dict(sd, strict=False)
    assert not unexpected and all(k.startswith("classifiers.") for k in missing)
    x = images(fresh)
    torch.testing.assert_close(fresh(x)["embedding"], trained(x)["embedding"])


def test_resnet_rejects_prompter():
    model = create_model("resnet-tiny")
    with pytest.raises(UserError, match="prompt"):
        model(images(model), prompter=lambda i, x: None)


# ---- names and options ------------------------------------------------------------------------


def test_unknown_model_name_lists_valid_names():
    with pytest.raises(UserError) as err:
        create_model("clip-vit-b61")
    msg = str(err.value)
    assert "clip-vit-b61" in msg and "Did you mean 'clip-vit-b16'" in msg
    assert all(name in msg for name in list_models())


def test_unknown_override_names_key_and_valid_keys():
    with pytest.raises(UserError, match="unknown model option 'depth'.*last_stride"):
        create_model("resnet-tiny", depth=18)
    with pytest.raises(UserError, match="unknown model option 'vision.heads'.*vision.patch_size"):
        create_model("clip-tiny", vision={"heads": 4})
    with pytest.raises(UserError, match="weights_env"):
        create_model("clip-tiny", weights_env="X")
    with pytest.raises(UserError, match="text tower"):
        create_model("resnet-tiny", text_tower=True)


def test_overrides_change_the_architecture():
    model = create_model("clip-tiny", vision={"layers": 2}, bnneck_bias_trainable=True, image_size=(32, 16))
    assert len(model.backbone.blocks) == 2
    assert model.necks["x12"].bias.requires_grad
    assert model.spec["vision"]["width"] == 64 and model.spec["image_size"] == [32, 16]
    assert model.eval()(torch.randn(1, 3, 32, 16))["x11"].shape == (1, 64)
    with pytest.raises(UserError, match="divisible"):
        create_model("clip-tiny", image_size=(60, 32))
