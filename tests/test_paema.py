"""PAEMA: the prompt-change α, the consolidation it weights, the key/value prompt attention (ViT and
CLIP), the ImageNet ViT loader, the two optimizers, the released schedule and a run on clip-tiny."""
import json
import math
import types

import pytest
import torch
import torch.nn.functional as F

from pad_bench.config import resolve_config, resolve_dataset_tables
from pad_bench.errors import UserError
from pad_bench.models import create_model
from pad_bench.models.attention import KVPrefix, packed_attention
from pad_bench.models.clip import block_forward, image_taps
from pad_bench.models.vit import prefix_attention
from pad_bench.strategies.paema.consolidation import prompt_change_alpha
from pad_bench.strategies.paema.plugins.prompt_fusion import PromptAlphaFusionPlugin
from pad_bench.strategies.paema.prompt import GeneralPromptBackbone
from pad_bench.training.optim import MultiOptimizer, build_optimizer

from conftest import tiny_sets


def test_alpha_is_the_mean_relative_change_of_the_prompt():
    old = torch.tensor([[1.0, 1.0], [2.0, -1.0]])
    new = torch.tensor([[1.0, 3.0], [2.0, 1.0]])
    # entries: 0; 2*2/(3+1) = 1; 0; 2*2/(1+1) = 2  -> mean 0.75
    assert prompt_change_alpha(new, old) == pytest.approx(0.75)
    assert prompt_change_alpha(old, new) == pytest.approx(0.75)  # symmetric
    assert prompt_change_alpha(old, old) == 0.0


def test_alpha_is_not_clipped_and_counts_zero_entries_as_unchanged():
    assert prompt_change_alpha(torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 0.0])) == pytest.approx(1.0)  # (2, 0)
    assert prompt_change_alpha(torch.tensor([-1.0]), torch.tensor([1.0])) == pytest.approx(2.0)


def _paema_net(seed: int):
    torch.manual_seed(seed)
    net = create_model("vit-tiny", num_classes=0, weights="random")
    net.backbone = GeneralPromptBackbone(net.backbone, length=2)
    return net


def test_consolidation_fuses_everything_with_the_prompt_alpha_and_keeps_new_rows():
    old, new = _paema_net(0), _paema_net(1)
    old.grow_classifier(2)
    new.grow_classifier(2)
    new.grow_classifier(1)  # one identity more
    with torch.no_grad():
        old.backbone.prompt.fill_(1.0)
        new.backbone.prompt.fill_(3.0)  # 2·|3 − 1| / (3 + 1) = 1 in blocks 1 and 2 ...
        new.backbone.prompt[0].fill_(1.0)  # ... 0 in block 0: α = 2/3
        old.necks["cls"].running_mean.fill_(0.0)
        new.necks["cls"].running_mean.fill_(3.0)
    before_new = {k: t.clone() for k, t in new.state_dict().items()}
    before_old = {k: t.clone() for k, t in old.state_dict().items()}
    plugin = PromptAlphaFusionPlugin(old=types.SimpleNamespace(model=old))
    plugin.after_training_exp(types.SimpleNamespace(model=new, exp_index=1))

    a = 2 / 3
    assert plugin.last_alpha == pytest.approx(a)
    fused = new.state_dict()
    torch.testing.assert_close(fused["necks.cls.running_mean"], torch.full((64,), 3 * a))
    torch.testing.assert_close(fused["backbone.prompt"][1], torch.full((2, 64), 3 * a + (1 - a)))
    w_new, w_old = before_new["classifiers.cls.weight"], before_old["classifiers.cls.weight"]
    torch.testing.assert_close(fused["classifiers.cls.weight"][:2], a * w_new[:2] + (1 - a) * w_old)
    torch.testing.assert_close(fused["classifiers.cls.weight"][2], w_new[2])
    key = "backbone.trunk.vit.blocks.0.attn.qkv.weight"
    torch.testing.assert_close(fused[key], a * before_new[key] + (1 - a) * before_old[key])


def _reference_prefix_attention(attn, x, prompts):
    """Written out from the released Attention.forward (prompt_type 0), without timm's helpers."""
    b, n, c = x.shape
    h = attn.num_heads
    qkv = F.linear(torch.cat([x, prompts], 1), attn.qkv.weight, attn.qkv.bias)
    qkv = qkv.reshape(b, n + prompts.shape[1], 3, h, c // h).permute(2, 0, 3, 1, 4)
    half = prompts.shape[1] // 2
    q, k = qkv[0, :, :, :n], qkv[1, :, :, :n + half]
    v = torch.cat([qkv[2, :, :, :n], qkv[2, :, :, n + half:]], dim=2)
    weights = ((q @ k.transpose(-2, -1)) * (c // h) ** -0.5).softmax(-1)
    out = (weights @ v).transpose(1, 2).reshape(b, n, c)
    return F.linear(out, attn.proj.weight, attn.proj.bias)


def test_prompts_enter_as_keys_then_values_through_the_qkv_projection():
    torch.manual_seed(0)
    net = create_model("vit-tiny", weights="random").eval()
    attn = net.backbone.blocks[0].attn
    x, prompts = torch.randn(2, 5, 64), torch.randn(2, 4, 64)
    torch.testing.assert_close(prefix_attention(attn, x, prompts), _reference_prefix_attention(attn, x, prompts))
    assert not torch.allclose(prefix_attention(attn, x, prompts), prefix_attention(attn, x, None))


def test_kv_prefix_attention_on_a_hand_computed_case():
    # one head, C = 2, identity q/k/v projections: the token (2, 0) attends over its own key and the key
    # of the first prompt (0, 1), taking its own value or the value of the second prompt (1, 2)
    x = torch.tensor([[[2.0, 0.0]]])
    prefix = torch.tensor([[[0.0, 1.0], [1.0, 2.0]]])
    out = packed_attention(x, lambda t: torch.cat([t, t, t], dim=-1), heads=1, prefix=prefix)
    w = 1 / (1 + math.exp(-4 / math.sqrt(2)))  # softmax weight of the scores (4/√2, 0) on the token's own key
    torch.testing.assert_close(out, torch.tensor([[[2 * w + (1 - w), 2 * (1 - w)]]]))
    with pytest.raises(ValueError, match="pairs"):
        packed_attention(x, lambda t: torch.cat([t, t, t], dim=-1), heads=1, prefix=prefix[:, :1])


def _reference_clip_block(blk, x, prompts):
    """An open_clip ResidualAttentionBlock written out, with the first half of the prompts' keys and the
    second half of their values concatenated to the block's keys and values."""
    attn, d = blk.attn, x.shape[-1]
    h = attn.num_heads
    (wq, wk, wv), (bq, bk, bv) = attn.in_proj_weight.chunk(3), attn.in_proj_bias.chunk(3)
    y, half = blk.ln_1(x), prompts.shape[1] // 2
    q = y @ wq.T + bq
    k = torch.cat([y, prompts[:, :half]], dim=1) @ wk.T + bk
    v = torch.cat([y, prompts[:, half:]], dim=1) @ wv.T + bv

    def split(t):
        return t.unflatten(-1, (h, d // h)).transpose(1, 2)

    weights = (split(q) @ split(k).transpose(-2, -1) / math.sqrt(d // h)).softmax(-1)
    x = x + blk.ls_1(attn.out_proj((weights @ split(v)).transpose(1, 2).flatten(2)))
    return x + blk.ls_2(blk.mlp(blk.ln_2(x)))


def test_clip_tower_with_the_general_prompt_equals_the_written_out_blocks():
    torch.manual_seed(0)
    net = create_model("clip-tiny", weights="random").eval()
    backbone = GeneralPromptBackbone(net.backbone, length=4)
    visual = net.backbone.clip.visual
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        tokens = visual.conv1(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([visual.class_embedding.expand(2, 1, -1), tokens], dim=1) + visual.positional_embedding
        tokens = visual.ln_pre(tokens)
        for i, blk in enumerate(visual.transformer.resblocks):
            prompts = backbone.prompt[i].expand(2, -1, -1)
            torch.testing.assert_close(block_forward(blk, tokens, prefix=prompts),
                                       _reference_clip_block(blk, tokens, prompts))
            tokens = _reference_clip_block(blk, tokens, prompts)
        taps = backbone(x)
        torch.testing.assert_close(taps["proj"], visual.ln_post(tokens[:, 0]) @ visual.proj)
        assert not torch.allclose(taps["proj"], net.backbone(x)["proj"])  # the prompt changes the features


def test_zero_length_kv_prefix_is_open_clips_forward_exactly():
    torch.manual_seed(0)
    # in training mode (no dropout in clip-tiny) open_clip's attention is not the fused inference kernel
    visual = create_model("clip-tiny", weights="random").backbone.clip.visual.train()
    x = torch.randn(2, 3, 64, 32)
    empty = image_taps(visual, x, lambda i, t: KVPrefix(t.new_zeros(t.shape[0], 0, t.shape[2])))
    assert torch.equal(empty["proj"], visual(x))


def test_every_blocks_key_and_value_prompts_get_gradients_on_clip():
    torch.manual_seed(0)
    backbone = GeneralPromptBackbone(create_model("clip-tiny", weights="random").backbone, length=4)
    backbone(torch.randn(2, 3, 64, 32))["proj"].pow(2).sum().backward()
    per_token = backbone.prompt.grad.abs().sum(dim=-1)  # (blocks, tokens)
    assert per_token.shape == (3, 4) and bool((per_token > 0).all())


def test_vit_takes_only_kv_prefix_prompts():
    net = create_model("vit-tiny", weights="random")
    with pytest.raises(TypeError, match="KVPrefix"):
        net(torch.randn(1, 3, 64, 32), prompter=lambda i, t: t[:, :2])


def test_vit_without_prompts_is_timms_forward():
    torch.manual_seed(0)
    net = create_model("vit-tiny", weights="random").eval()
    x = torch.randn(2, 3, 64, 32)
    torch.testing.assert_close(net(x)["cls"], net.backbone.vit.forward_features(x)[:, 0])


def test_imagenet_checkpoint_loads_without_head_and_with_a_resized_position_grid(tmp_path):
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    square = VisionTransformer(img_size=32, patch_size=8, embed_dim=64, depth=3, num_heads=2, num_classes=10)
    path = tmp_path / "vit.pth"
    torch.save(square.state_dict(), path)  # a 4x4 grid and a 10-class head
    net = create_model("vit-tiny", weights=str(path))
    pos = net.backbone.vit.pos_embed
    assert pos.shape == (1, 1 + 8 * 4, 64)
    torch.testing.assert_close(pos[0, 0], square.pos_embed[0, 0])  # the CLS position is kept
    torch.testing.assert_close(net.backbone.vit.blocks[2].mlp.fc2.weight, square.blocks[2].mlp.fc2.weight)


def _jx_vit_b16_layout(classes: int = 1000, pre_logits: bool = False) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the tensors in jx_vit_base_p16_224-80ecf9dd.pth: timm's ViT-B/16 at 224×224
    with its 1000-class head (the in-21k release adds a pre-logits layer and 21843 classes)."""
    d, hidden = 768, 3072
    layout = {"cls_token": (1, 1, d), "pos_embed": (1, 1 + 14 * 14, d),
              "patch_embed.proj.weight": (d, 3, 16, 16), "patch_embed.proj.bias": (d,)}
    for i in range(12):
        shapes = {"norm1.weight": (d,), "norm1.bias": (d,), "attn.qkv.weight": (3 * d, d), "attn.qkv.bias": (3 * d,),
                  "attn.proj.weight": (d, d), "attn.proj.bias": (d,), "norm2.weight": (d,), "norm2.bias": (d,),
                  "mlp.fc1.weight": (hidden, d), "mlp.fc1.bias": (hidden,), "mlp.fc2.weight": (d, hidden),
                  "mlp.fc2.bias": (d,)}
        layout.update({f"blocks.{i}.{k}": shape for k, shape in shapes.items()})
    layout.update({"norm.weight": (d,), "norm.bias": (d,)})
    if pre_logits:
        layout.update({"pre_logits.fc.weight": (d, d), "pre_logits.fc.bias": (d,)})
    layout.update({"head.weight": (classes, d), "head.bias": (classes,)})
    return layout


def test_the_jx_layout_is_timms_vit_b16_with_its_head():
    import timm

    with torch.device("meta"):  # names and shapes only
        reference = timm.create_model("vit_base_patch16_224", pretrained=False)
    assert _jx_vit_b16_layout() == {k: tuple(t.shape) for k, t in reference.state_dict().items()}


def _jx_file(path, layout: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Write a checkpoint with `layout` at `path`: every tensor but the position embedding is one distinct
    value broadcast to its shape (a few bytes on disk); the position grid holds its row index in channel 0
    and its column index in channel 1."""
    sd = {k: torch.full((1,), float(j + 1)).expand(shape) for j, (k, shape) in enumerate(layout.items())}
    rows, cols = torch.meshgrid(torch.arange(14.0), torch.arange(14.0), indexing="ij")
    sd["pos_embed"] = torch.randn(1, 197, 768)
    sd["pos_embed"][0, 1:, 0], sd["pos_embed"][0, 1:, 1] = rows.flatten(), cols.flatten()
    torch.save(sd, path)
    assert path.stat().st_size < 4 * 2**20
    return sd


def test_vit_b16_loads_a_file_with_the_jx_layout_through_model_weights(tmp_path):
    from pad_bench.models.zoo import read_state_dict
    from pad_bench.strategies.paema.strategy import PAEMA

    layout = _jx_vit_b16_layout()
    sd = _jx_file(tmp_path / "jx_vit_base_p16_224-80ecf9dd.pth", layout)
    cfg = resolve_config(benchmark="aka-order1", strategy="paema",
                         sets={"model.weights": str(tmp_path / "jx_vit_base_p16_224-80ecf9dd.pth")})
    net = PAEMA.build_model(cfg, None)
    vit = net.backbone.trunk
    loaded = vit.vit.state_dict()
    assert set(loaded) == set(layout) - {"head.weight", "head.bias"}
    for k, t in loaded.items():
        if k != "pos_embed":
            assert torch.equal(t, sd[k]), k
    grid = loaded["pos_embed"][0, 1:].reshape(16, 8, 768)
    torch.testing.assert_close(loaded["pos_embed"][0, 0], sd["pos_embed"][0, 0])  # the CLS position is kept
    # bilinear, half-pixel centres: output row i samples row 14/16·(i + ½) − ½ (clamped to [0, 13]),
    # column j samples column 14/8·(j + ½) − ½; the index channels are linear, so they read back exactly
    i, j = torch.arange(16.0), torch.arange(8.0)
    torch.testing.assert_close(grid[:, :, 0], (0.875 * i - 0.0625).clamp(0, 13)[:, None].expand(16, 8))
    torch.testing.assert_close(grid[:, :, 1], (1.75 * j + 0.375)[None].expand(16, 8))
    assert net.backbone.prompt.shape == (12, 10, 768)

    # the in-21k release's pre-logits layer and 21843-class head go too (strict load of the rest)
    path21k = tmp_path / "in21k.pth"
    _jx_file(path21k, _jx_vit_b16_layout(classes=21843, pre_logits=True))
    module, adapted = vit.prepare_pretrained(read_state_dict(path21k), str(path21k))
    module.load_state_dict(adapted, strict=True)


def test_vit_b16_needs_a_local_weights_file(monkeypatch):
    monkeypatch.delenv("PAD_BENCH_VIT_WEIGHTS", raising=False)
    with pytest.raises(UserError, match="PAD_BENCH_VIT_WEIGHTS"):
        create_model("vit-b16")


def test_general_prompt_needs_a_vit_and_an_even_length():
    with pytest.raises(UserError, match="ViT"):
        GeneralPromptBackbone(create_model("resnet-tiny", weights="random").backbone)
    with pytest.raises(UserError, match="even"):
        GeneralPromptBackbone(create_model("clip-tiny", weights="random").backbone, length=5)


def test_prompt_group_gets_adam_and_the_rest_sgd_stepped_together():
    w, p = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    opt = build_optimizer([{"name": "net", "params": [w], "lr": 0.1, "weight_decay": 0.0, "optimizer": "sgd"},
                           {"name": "prompt", "params": [p], "lr": 0.1, "weight_decay": 0.0, "optimizer": "adam"}],
                          "adam", momentum=0.9)
    assert isinstance(opt, MultiOptimizer) and [g["name"] for g in opt.param_groups] == ["net", "prompt"]
    for g in opt.param_groups:
        g["lr"] = 0.5  # a schedule writes through
    (3 * w.sum() + 3 * p.sum()).backward()
    opt.step()
    torch.testing.assert_close(w.detach(), torch.full((2,), 1 - 0.5 * 3))  # SGD: lr·grad
    torch.testing.assert_close(p.detach(), torch.full((2,), 0.5), atol=1e-6, rtol=0)  # Adam: lr·sign on step 1
    assert len(opt.state_dict()["optimizers"]) == 2


def test_released_schedule_keeps_the_first_domain_milestones_and_msmt17_later():
    from pad_bench.strategies.paema.strategy import PAEMA

    cfg = resolve_config(benchmark="aka-order1", strategy="paema")
    PAEMA.finalize_config(cfg)
    resolve_dataset_tables(cfg)
    assert cfg["strategy"]["milestones"] == [[40, 70], [30], [30], [20, 30], [30]]
    cfg = resolve_config(benchmark="order-51", strategy="paema")  # MSMT17 first
    PAEMA.finalize_config(cfg)
    resolve_dataset_tables(cfg)
    assert cfg["strategy"]["milestones"][0] == [40, 70]


def test_clip_profiles_take_the_clip_reid_recipe_with_the_prompt_on_adam():
    from pad_bench.strategies.paema.strategy import PAEMA

    cfg = resolve_config(benchmark="aka-order1", strategy="paema", profile="clip")
    PAEMA.finalize_config(cfg)
    hp = cfg["strategy"]
    assert cfg["model"]["name"] == "clip-vit-b16" and (hp["optimizer"], hp["lr"]) == ("adam", 5e-6)
    assert (hp["prompt_optimizer"], hp["prompt_lr"]) == ("adam", 0.005)
    assert hp["milestones"]["msmt17"] == [18, 28]  # the recipe's table, untouched by PAEMA's MSMT17 rule
    on_clip, on_vit = (resolve_config(benchmark="synth", strategy="paema", profile=p) for p in ("clip-tiny", "tiny"))
    assert (on_clip["model"]["name"], on_vit["model"]["name"]) == ("clip-tiny", "vit-tiny")
    assert (on_clip["strategy"], on_clip["train"]) == (on_vit["strategy"], on_vit["train"])  # the same budget


@pytest.mark.slow
def test_paema_on_clip_tiny_runs_a_synthetic_experience(synth_root, tmp_path):
    from pad_bench.run import runner

    cfg = resolve_config(benchmark="synth", strategy="paema", profile="clip-tiny",
                         sets=tiny_sets(synth_root, **{"benchmark.domains": ["synth_d1"], "train.epochs": 2}))
    run_dir = runner.execute(cfg, tmp_path / "run", progress=False)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["model"] == "clip-tiny" and summary["experiences"][0]["epochs"] == 2
    assert summary["experiences"][0]["lr"] == {"network": cfg["strategy"]["lr"], "prompt": 5e-3}
    final = summary["mAP"]["final"]
    assert 0 <= final["seen"]["synth_d1"] <= 100 and 0 <= final["unseen"]["synth_u1"] <= 100
    state = torch.load(run_dir / "checkpoints" / "step001.pt", weights_only=False)["strategy"]["model"]
    assert state["backbone.prompt"].shape == (3, 10, 64)  # clip-tiny: 3 blocks of width 64
    assert "backbone.trunk.clip.visual.transformer.resblocks.2.attn.in_proj_weight" in state
