"""Pretraining of the tiny models on the synthetic corpus (`corpus.py`), cached per data root.

- clip-tiny: both towers with the CLIP objective (symmetric InfoNCE over image-caption pairs;
  identities with the same caption count as positives of each other);
- resnet-tiny, vit-tiny: identity classification of the corpus's training identities (the ImageNet
  analogue).

Each model is written as an ordinary weights file, the kind a user passes as `model.weights`:
open_clip key names for CLIP (`visual.*`, `transformer.*`, ...), torchvision key names for the
ResNet (`conv1.*`, `layer1.*`, ..., `fc.*`), timm's for the ViT (`patch_embed.*`, ..., `head.*`), so the benchmark loads them through the same path a
real OpenAI CLIP or ImageNet ResNet file takes. Beside it, `report.json` (docs/synthetic.md) holds
the evaluation on the held-out identities and the time taken. Same seed, same bytes.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UserError
from ..io import atomic_write, atomic_write_json
from .attributes import ATTRIBUTES, caption, matches, sample_partial, zero_shot_class, zero_shot_prompts
from .corpus import CorpusConfig, corpus_is_complete, generate_corpus, load_corpus

PRETRAIN_VERSION = 1  # bump when the training recipe changes: it invalidates cached weights
PRETRAINED_DIR = "pretrained"
WEIGHTS_FILE = "weights.pt"
REPORT_FILE = "report.json"
PRETRAINABLE = ("clip-tiny", "resnet-tiny", "vit-tiny")
CLASSIFIER_NAMES = {"resnet": "fc", "vit": "head"}  # torchvision's and timm's name of the ImageNet classifier


@dataclass(frozen=True)
class PretrainConfig:
    """The pretraining recipe of both tiny models (one optimizer step = one batch)."""

    seed: int = 0
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    steps: int = 600
    batch: int = 128
    lr: float = 4.0e-3
    weight_decay: float = 0.05
    warmup_steps: int = 30
    flip: bool = True  # random horizontal flip (no attribute depends on the side)
    label_smoothing: float = 0.1  # resnet-tiny's identity classification


DEFAULT_PRETRAIN = PretrainConfig()  # what `model.weights: synth-pretrained` stands for


def check_pretrainable(model: str) -> None:
    if model not in PRETRAINABLE:
        raise UserError(f"there is no synthetic pretraining for model '{model}' (only {', '.join(PRETRAINABLE)}); "
                        f"pass --set model.weights=PATH or model.weights=random")


def pretrained_dir(data_root: str | Path, model: str, cfg: PretrainConfig) -> Path:
    return Path(data_root) / PRETRAINED_DIR / f"{model}-s{cfg.seed}"


def ensure_pretrained(data_root: str | Path, model: str, cfg: PretrainConfig = DEFAULT_PRETRAIN,
                      log=print) -> Path:
    """The weights file of `model` pretrained by `cfg` on the corpus in data_root: made once, then cached."""
    check_pretrainable(model)
    out = pretrained_dir(data_root, model, cfg)
    if is_cached(out, cfg):
        return out / WEIGHTS_FILE
    if not corpus_is_complete(data_root, cfg.corpus):
        t0 = time.perf_counter()
        log(f"pretraining corpus: rendering into {Path(data_root) / 'synth_pretrain'} ...")
        generate_corpus(data_root, cfg.corpus)
        log(f"pretraining corpus: done in {time.perf_counter() - t0:.0f}s")
    log(f"pretraining {model} on the synthetic corpus ...")
    report = pretrain(data_root, model, cfg, out)
    log(f"pretraining {model}: done in {report['seconds']['total']:.0f}s -> {out / WEIGHTS_FILE}")
    return out / WEIGHTS_FILE


def is_cached(out: Path, cfg: PretrainConfig) -> bool:
    """True when `out` (pretrained_dir) holds the weights of exactly this recipe."""
    try:
        report = json.loads((out / REPORT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (report.get("version") == PRETRAIN_VERSION and report.get("config") == _config_record(cfg)
            and (out / WEIGHTS_FILE).is_file())


def _config_record(cfg: PretrainConfig) -> dict:
    return json.loads(json.dumps(asdict(cfg)))


# ---- data ----------------------------------------------------------------------------------
@dataclass
class CorpusSplit:
    images: Tensor  # (N, 3, H, W), normalised as the model's family expects
    pids: Tensor  # (N,) identity index within the split, 0-based
    captions: list[str]  # one per identity of the split
    attributes: list[dict[str, str]]  # one per identity


def load_splits(data_root: str | Path, cfg: PretrainConfig, family: str,
                image_size: tuple[int, int]) -> tuple[CorpusSplit, CorpusSplit]:
    """The corpus's (training, held-out) identities, every image transformed as the model's test images."""
    from PIL import Image

    from ..data.transforms import test_transform

    tf = test_transform(image_size, family)
    images, records = load_corpus(data_root, cfg.corpus)
    splits = []
    for heldout in (False, True):
        chosen = [im for im in images if im.heldout == heldout]
        pids = sorted({im.pid for im in chosen})
        index = {pid: i for i, pid in enumerate(pids)}
        splits.append(CorpusSplit(
            images=torch.stack([tf(Image.open(im.path).convert("RGB")) for im in chosen]),
            pids=torch.tensor([index[im.pid] for im in chosen]),
            captions=[records[pid]["caption"] for pid in pids],
            attributes=[records[pid]["attributes"] for pid in pids],
        ))
    return splits[0], splits[1]


def _augment(x: Tensor, rng: np.random.Generator, flip: bool) -> Tensor:
    if flip:
        mask = torch.from_numpy(rng.random(len(x)) < 0.5)
        x = torch.where(mask[:, None, None, None], x.flip(-1), x)
    return x


# ---- training ------------------------------------------------------------------------------
def _lr_factor(step: int, cfg: PretrainConfig) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * t))


def _train(model: nn.Module, loss_fn, cfg: PretrainConfig, n_ids: int, rng: np.random.Generator,
           pick) -> list[float]:
    """`cfg.steps` AdamW steps; each batch has min(batch, n_ids) distinct identities (`pick`)."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, cfg))
    losses = []
    model.train()
    for _ in range(cfg.steps):
        ids = rng.permutation(n_ids)[: cfg.batch]
        loss = loss_fn(*pick(ids))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return losses


def _one_image_per_id(split: CorpusSplit, ids: np.ndarray, rng: np.random.Generator, flip: bool) -> tuple[Tensor, Tensor]:
    """One random image of each identity in `ids`; returns (images, identity indices)."""
    rows = [int(rng.choice(np.flatnonzero(split.pids.numpy() == i))) for i in ids]
    return _augment(split.images[rows], rng, flip), torch.as_tensor(ids)


def clip_loss(a: Tensor, b: Tensor, logit_scale: Tensor, same: Tensor) -> Tensor:
    """Symmetric InfoNCE between L2-normalised features a (N, D) and b (N, D); `same[i, j]` marks
    every pair that fits (the diagonal among them), the targets spread evenly over them."""
    logits = logit_scale.exp().clamp(max=100) * F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T
    same = same.float()
    return 0.5 * (F.cross_entropy(logits, same / same.sum(1, keepdim=True))
                  + F.cross_entropy(logits.T, same.T / same.T.sum(1, keepdim=True)))


def encode_captions(backbone, texts: list[str]) -> Tensor:
    """Text features of captions through the CLIP text tower (not normalised)."""
    tokens = backbone.tokenize(texts)
    length = int(tokens.argmax(dim=-1).max()) + 1  # causal attention: nothing after the EOT matters
    tokens = tokens[:, :length]
    return backbone.encode_prompt_embeddings(backbone.embed_tokens(tokens), tokens)


def _pretrain_clip(train: CorpusSplit, cfg: PretrainConfig, rng: np.random.Generator):
    from ..models import create_model

    net = create_model("clip-tiny", weights="random", text_tower=True)
    backbone = net.backbone
    backbone.clip.requires_grad_(True)

    def loss(images: Tensor, ids: Tensor) -> Tensor:
        records = [train.attributes[i] for i in ids.tolist()]
        partial = [sample_partial(r, rng) for r in records]
        same = torch.tensor([[matches(p, r) for r in records] for p in partial])
        txt = encode_captions(backbone, [caption(p, mention_absent=True) for p in partial])
        # rows: captions, columns: images; an image may fit several captions and vice versa
        return clip_loss(txt, backbone(images)["proj"], backbone.clip.logit_scale, same)

    losses = _train(backbone, loss, cfg, len(train.captions), rng,
                    lambda ids: _one_image_per_id(train, ids, rng, cfg.flip))
    return backbone, backbone.clip.state_dict(), losses


class _IdentityClassifier(nn.Module):
    def __init__(self, backbone: nn.Module, n_classes: int):
        super().__init__()
        self.backbone = backbone
        self.tap = backbone.embedding_taps[0]
        self.fc = nn.Linear(backbone.tap_dims[self.tap], n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.backbone(x)[self.tap])


def _pretrain_classifier(model_name: str, family: str):
    """A pretraining by identity classification of `model_name` (the ImageNet analogue)."""
    def run(train: CorpusSplit, cfg: PretrainConfig, rng: np.random.Generator):
        from ..models import create_model

        net = create_model(model_name, weights="random")
        model = _IdentityClassifier(net.backbone, len(train.captions))

        def loss(images: Tensor, ids: Tensor) -> Tensor:
            return F.cross_entropy(model(images), ids, label_smoothing=cfg.label_smoothing)

        losses = _train(model, loss, cfg, len(train.captions), rng,
                        lambda ids: _one_image_per_id(train, ids, rng, cfg.flip))
        # the file holds what a real checkpoint holds: the module the loader fills, plus the classifier
        trunk, _ = net.backbone.prepare_pretrained({}, "")
        sd = dict(trunk.state_dict())
        sd.update({f"{CLASSIFIER_NAMES[family]}.{k}": t for k, t in model.fc.state_dict().items()})
        return net.backbone, sd, losses

    return run


# ---- evaluation on held-out identities -----------------------------------------------------------
@torch.no_grad()
def image_features(backbone: nn.Module, images: Tensor, tap: str, batch: int = 256) -> Tensor:
    """L2-normalised features of `images` at the backbone's output `tap`, in eval mode."""
    backbone.eval()
    return F.normalize(torch.cat([backbone(images[i:i + batch])[tap] for i in range(0, len(images), batch)]), dim=-1)


def _retrieval_map(feats: Tensor, pids: Tensor) -> float:
    """mAP with each identity's first image as query and its other images as gallery (percent)."""
    from ..metrics.retrieval import evaluate_retrieval

    first = torch.zeros(len(pids), dtype=torch.bool)
    first[np.unique(pids.numpy(), return_index=True)[1]] = True
    q, g = first, ~first
    res = evaluate_retrieval(feats[q], feats[g], pids[q], pids[g], torch.zeros(int(q.sum())),
                             torch.ones(int(g.sum())))
    return round(100 * res["mAP"], 2)


@torch.no_grad()
def zero_shot_attributes(backbone, feats: Tensor, attributes: list[dict[str, str]], pids: Tensor) -> dict:
    """Per attribute: accuracy (percent) of picking the class whose prompt is closest to each image,
    with the chance level of a uniform guess and the share of the most frequent class."""
    out = {}
    for name in ATTRIBUTES:
        classes, prompts = zero_shot_prompts(name)
        truth = [zero_shot_class(name, attributes[p]) for p in pids.tolist()]
        txt = F.normalize(encode_captions(backbone, prompts), dim=-1)
        pred = (feats @ txt.T).argmax(dim=1).tolist()
        correct = sum(classes[k] == t for k, t in zip(pred, truth))
        out[name] = {"accuracy": round(100 * correct / len(truth), 2), "chance": round(100 / len(classes), 2),
                     "majority": round(100 * max(map(truth.count, classes)) / len(truth), 2),
                     "classes": len(classes)}
    return out


@torch.no_grad()
def image_to_caption_r1(backbone, feats: Tensor, split: CorpusSplit) -> float:
    """Percent of held-out images whose nearest held-out caption is their identity's caption."""
    unique = sorted(set(split.captions))
    txt = F.normalize(encode_captions(backbone, unique), dim=-1)
    best = (feats @ txt.T).argmax(dim=1).tolist()
    hits = sum(unique[b] == split.captions[p] for b, p in zip(best, split.pids.tolist()))
    return round(100 * hits / len(best), 2)


# ---- the whole job -----------------------------------------------------------------------------
def pretrain(data_root: str | Path, model: str, cfg: PretrainConfig, out: Path) -> dict:
    """Pretrain `model` on the corpus, evaluate it on the held-out identities, write weights + report."""
    from ..models.zoo import model_config

    t0, cpu0 = time.perf_counter(), time.process_time()
    mcfg = model_config(model)
    train, heldout = load_splits(data_root, cfg, mcfg["family"], tuple(mcfg["image_size"]))
    t_load = time.perf_counter()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng([cfg.seed, PRETRAINABLE.index(model)])
    family = mcfg["family"]
    job = _pretrain_clip if family == "clip" else _pretrain_classifier(model, family)
    backbone, state_dict, losses = job(train, cfg, rng)
    t_train = time.perf_counter()
    feats = image_features(backbone, heldout.images, "proj" if family == "clip" else backbone.embedding_taps[0])
    evaluation = {"heldout_identities": len(heldout.captions), "heldout_images": len(heldout.pids),
                  "retrieval_mAP": _retrieval_map(feats, heldout.pids)}
    if family == "clip":
        evaluation["image_to_caption_R1"] = image_to_caption_r1(backbone, feats, heldout)
        evaluation["zero_shot"] = zero_shot_attributes(backbone, feats, heldout.attributes, heldout.pids)
    t_eval = time.perf_counter()
    atomic_write(out / WEIGHTS_FILE, lambda tmp: torch.save(state_dict, tmp))
    report = {
        "version": PRETRAIN_VERSION,
        "model": model,
        "weights": WEIGHTS_FILE,
        "config": _config_record(cfg),
        "train": {"identities": len(train.captions), "images": len(train.pids), "steps": cfg.steps,
                  "loss_first": round(losses[0], 4), "loss_last": round(float(np.mean(losses[-20:])), 4)},
        "heldout": evaluation,
        "seconds": {"load": round(t_load - t0, 1), "train": round(t_train - t_load, 1),
                    "evaluate": round(t_eval - t_train, 1), "total": round(t_eval - t0, 1),
                    "cpu_total": round(time.process_time() - cpu0, 1)},
        "threads": torch.get_num_threads(),
    }
    atomic_write_json(out / REPORT_FILE, report)
    return report

