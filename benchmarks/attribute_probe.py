"""Which tower lacks an attribute (criterion W5, docs/synthetic.md#world-criteria): a linear probe of the
pretrained clip-tiny's image embedding beside its zero-shot accuracy.

    PYTHONPATH=. python benchmarks/attribute_probe.py --data-root DIR [--weights PATH]

Per attribute, on the pretraining corpus's held-out identities: the accuracy of a linear classifier
fitted on the training identities' image embeddings, the zero-shot accuracy (the image's nearest class
prompt, as in report.json), the majority rate, and the mean cosine between the attribute's class
prompts in the text tower. A probe at or below the majority rate means the image embedding holds no
linear trace of the attribute, so no prompt can recover it; prompts with a cosine near 1 mean the text
tower does not tell the classes apart.
"""
from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F
from torch import Tensor

from pad_bench.models import create_model
from pad_bench.models.zoo import model_config
from pad_bench.synthetic import pretrain
from pad_bench.synthetic.attributes import ATTRIBUTES, zero_shot_class, zero_shot_prompts


def linear_probe(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, n_classes: int,
                 l2: float = 1e-3) -> float:
    """Test accuracy (percent) of a softmax classifier fitted on (train_x, train_y) by L-BFGS."""
    w = torch.zeros(train_x.shape[1], n_classes, requires_grad=True)
    b = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200)

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(train_x @ w + b, train_y) + l2 * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return 100 * (test_x @ w + b).argmax(1).eq(test_y).float().mean().item()


def mean_offdiagonal_cosine(x: Tensor) -> float:
    """Mean cosine over the ordered pairs of distinct rows of x (at least two rows)."""
    x = F.normalize(x, dim=-1)
    sim = x @ x.T
    n = len(x)
    return ((sim.sum() - sim.trace()) / (n * n - n)).item()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", required=True, help="a synthetic data root (its corpus is rendered if missing)")
    p.add_argument("--weights", help="clip-tiny weights (default: the data root's pretrained ones, made if missing)")
    args = p.parse_args()
    cfg = pretrain.DEFAULT_PRETRAIN
    weights = args.weights or pretrain.ensure_pretrained(args.data_root, "clip-tiny", cfg)
    backbone = create_model("clip-tiny", weights=str(weights), text_tower=True).backbone
    train, heldout = pretrain.load_splits(args.data_root, cfg, "clip", tuple(model_config("clip-tiny")["image_size"]))
    train_x = pretrain.image_features(backbone, train.images, "proj")
    test_x = pretrain.image_features(backbone, heldout.images, "proj")
    zero_shot = pretrain.zero_shot_attributes(backbone, test_x, heldout.attributes, heldout.pids)
    print(f"{'attribute':14s} {'probe':>6s} {'zero-shot':>9s} {'majority':>8s} {'prompt cos':>10s}")
    for name in ATTRIBUTES:
        classes, prompts = zero_shot_prompts(name)

        def labels(split: pretrain.CorpusSplit) -> Tensor:
            return torch.tensor([classes.index(zero_shot_class(name, split.attributes[i])) for i in split.pids.tolist()])

        probe = linear_probe(train_x, labels(train), test_x, labels(heldout), len(classes))
        with torch.no_grad():
            cos = mean_offdiagonal_cosine(pretrain.encode_captions(backbone, prompts))
        z = zero_shot[name]
        print(f"{name:14s} {probe:6.1f} {z['accuracy']:9.1f} {z['majority']:8.1f} {cos:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
