"""PAEMA: the prompt-change α, the consolidation it weights, the key/value prompt attention, the
ImageNet ViT loader, the two optimizers and the released schedule."""
import types

import pytest
import torch
import torch.nn.functional as F

from pad_bench.config import resolve_config
from pad_bench.errors import UserError
from pad_bench.models import create_model
from pad_bench.models.vit import prefix_attention
from pad_bench.strategies.paema.consolidation import prompt_change_alpha
from pad_bench.strategies.paema.plugins.prompt_fusion import PromptAlphaFusionPlugin
from pad_bench.strategies.paema.prompt import GeneralPromptBackbone
from pad_bench.training.optim import MultiOptimizer, build_optimizer


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


def test_vit_b16_needs_a_local_weights_file(monkeypatch):
    monkeypatch.delenv("PAD_BENCH_VIT_WEIGHTS", raising=False)
    with pytest.raises(UserError, match="PAD_BENCH_VIT_WEIGHTS"):
        create_model("vit-b16")


def test_general_prompt_needs_a_vit():
    with pytest.raises(UserError, match="ViT"):
        GeneralPromptBackbone(create_model("resnet-tiny", weights="random").backbone)


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
    assert cfg["strategy"]["milestones"] == [[40, 70], [30], [30], [20, 30], [30]]
    cfg = resolve_config(benchmark="order-51", strategy="paema")  # MSMT17 first
    PAEMA.finalize_config(cfg)
    assert cfg["strategy"]["milestones"][0] == [40, 70]
