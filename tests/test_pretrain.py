"""Synthetic pretraining (a tiny recipe): deterministic, cached, ordinary weights files that load
through `model.weights`, its report, and what `model.weights: synth-pretrained` resolves to."""
from __future__ import annotations

import copy
import json
import shutil
import threading

import pytest
import torch
from filelock import FileLock

from pad_bench.cli import main
from pad_bench.config import resolve_config
from pad_bench.errors import UserError
from pad_bench.models import create_model
from pad_bench.run.build import finalize
from pad_bench.synthetic import assets, pretrain
from pad_bench.synthetic.corpus import CorpusConfig
from pad_bench.synthetic.domains import SynthConfig, generate

from conftest import tiny_sets

TINY = pretrain.PretrainConfig(seed=1, corpus=CorpusConfig(seed=2, train_ids=6, heldout_ids=3, images_per_id=2,
                                                           height=64, width=32),
                               steps=2, batch=4, warmup_steps=1)
TINY_DOMAINS = SynthConfig(seed=3, n_train_domains=5, n_unseen_domains=2, train_ids=2, test_ids=2,
                           images_per_id=2, query_per_id=1, gallery_per_id=2, distractors=0, height=64, width=32)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    return root, {m: pretrain.ensure_pretrained(root, m, TINY, log=lambda *_: None) for m in pretrain.PRETRAINABLE}


def test_same_seed_same_weights_and_cached(pretrained, tmp_path):
    root, paths = pretrained
    again = pretrain.pretrain(root, "clip-tiny", TINY, tmp_path / "again")
    a, b = torch.load(paths["clip-tiny"], weights_only=True), torch.load(tmp_path / "again" / "weights.pt",
                                                                        weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert again["config"]["seed"] == 1
    mtime = paths["clip-tiny"].stat().st_mtime_ns
    assert pretrain.ensure_pretrained(root, "clip-tiny", TINY, log=lambda *_: None) == paths["clip-tiny"]
    assert paths["clip-tiny"].stat().st_mtime_ns == mtime  # cached: not trained again


def test_weights_load_through_model_weights(pretrained):
    _, paths = pretrained
    sd = torch.load(paths["clip-tiny"], weights_only=True)
    assert "visual.conv1.weight" in sd and "token_embedding.weight" in sd  # open_clip key names
    full = create_model("clip-tiny", weights=str(paths["clip-tiny"]), text_tower=True)
    assert torch.equal(full.backbone.clip.token_embedding.weight, sd["token_embedding.weight"])
    image_only = create_model("clip-tiny", weights=str(paths["clip-tiny"]))
    assert torch.equal(image_only.backbone.clip.visual.proj, sd["visual.proj"])
    assert image_only.spec["weights"] == str(paths["clip-tiny"])
    rsd = torch.load(paths["resnet-tiny"], weights_only=True)
    assert "layer4.0.conv1.weight" in rsd and rsd["fc.weight"].shape[0] == 6  # torchvision names, 6 identities
    resnet = create_model("resnet-tiny", weights=str(paths["resnet-tiny"]), cut_at="layer3")
    assert torch.equal(resnet.backbone.body.conv1.weight, rsd["conv1.weight"])
    vsd = torch.load(paths["vit-tiny"], weights_only=True)
    assert "patch_embed.proj.weight" in vsd and vsd["head.weight"].shape[0] == 6  # timm names
    vit = create_model("vit-tiny", weights=str(paths["vit-tiny"]))
    assert torch.equal(vit.backbone.vit.pos_embed, vsd["pos_embed"])


def test_report(pretrained):
    _, paths = pretrained
    clip = json.loads(paths["clip-tiny"].with_name("report.json").read_text())
    assert clip["model"] == "clip-tiny" and clip["weights"] == "weights.pt"
    assert clip["train"] == {**clip["train"], "identities": 6, "images": 12, "steps": 2}
    held = clip["heldout"]
    assert held["heldout_identities"] == 3 and held["heldout_images"] == 6
    assert 0 <= held["image_to_caption_R1"] <= 100 and 0 <= held["retrieval_mAP"] <= 100
    zs = held["zero_shot"]
    assert zs["upper_colour"]["classes"] == 11 and zs["upper_colour"]["chance"] == 9.09  # 100 / 11
    assert zs["hat"]["classes"] == 2 and zs["hat"]["chance"] == 50.0
    # 6 held-out images: every accuracy and majority share is a multiple of 1/6
    assert all(round(v["accuracy"] * 6 / 100, 2) % 1 == 0 for v in zs.values())
    assert set(clip["seconds"]) == {"load", "train", "evaluate", "total", "cpu_total"}
    resnet = json.loads(paths["resnet-tiny"].with_name("report.json").read_text())
    assert "zero_shot" not in resnet["heldout"] and 0 <= resnet["heldout"]["retrieval_mAP"] <= 100


def test_the_asset_step_makes_what_a_fresh_data_root_lacks_and_the_config_points_at_it(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrain, "DEFAULT_PRETRAIN", TINY)
    monkeypatch.setattr(assets, "DEFAULT_SYNTH", TINY_DOMAINS)
    cfg = resolve_config(benchmark="synth", strategy="finetune", sets={"benchmark.data_root": str(tmp_path)})
    assert cfg["model"]["weights"] == "synth-pretrained"  # the benchmark's default
    with pytest.raises(UserError, match="the run needs the synthetic domains .* asset step"):
        finalize(copy.deepcopy(cfg))  # resolving a config makes nothing
    assert len(assets.pending_assets(cfg)) == 3 and not any(tmp_path.iterdir())  # domains, corpus, weights
    assets.make_assets(cfg, log=lambda *_: None)
    assert assets.pending_assets(cfg) == [] and cfg["model"]["weights"] == "synth-pretrained"
    assert (tmp_path / "synth.json").is_file() and (tmp_path / "synth_u2" / "attributes.json").is_file()
    expected = pretrain.pretrained_dir(tmp_path, "clip-tiny", TINY) / "weights.pt"
    assets.point_at_pretrained(cfg)
    assert cfg["model"]["weights"] == str(expected) and expected.is_file()
    assert cfg["model"]["pretrained_report"] == str(expected.with_name("report.json"))

    cfg = resolve_config(benchmark="synth", strategy="finetune",
                         sets={"benchmark.data_root": str(tmp_path), "model.weights": "random"})
    assets.point_at_pretrained(cfg)
    assert cfg["model"]["weights"] == "random"


def test_synth_pretrained_errors(tmp_path):
    cfg = resolve_config(benchmark="synth", strategy="finetune", sets={"benchmark.data_root": str(tmp_path)})
    (tmp_path / "synth_d1").mkdir()  # left over from an interrupted generation
    with pytest.raises(UserError, match="datasets synth --out"):
        assets.pending_assets(cfg)
    with pytest.raises(UserError, match="datasets synth --out"):
        assets.make_assets(cfg, log=lambda *_: None)
    cfg = resolve_config(benchmark="aka-order1", strategy="finetune", sets={"model.weights": "synth-pretrained"})
    with pytest.raises(UserError, match="synthetic benchmark only"):
        assets.pending_assets(cfg)
    with pytest.raises(UserError, match="no synthetic pretraining for model 'clip-vit-b16'"):
        pretrain.ensure_pretrained(tmp_path, "clip-vit-b16", TINY)


def test_runs_started_together_share_the_asset_step(tmp_path, monkeypatch):
    """While one run's asset step holds the data root's lock, its half-made domains are pending for a
    run started beside it, which waits on the lock and then finds them made; once the lock is free, the
    same half-made domains are an interrupted generation and refused."""
    monkeypatch.setattr(assets, "DEFAULT_SYNTH", TINY_DOMAINS)
    cfg = resolve_config(benchmark="synth", strategy="finetune",
                         sets={"benchmark.data_root": str(tmp_path), "model.weights": "random"})
    holding, go_on = threading.Event(), threading.Event()

    def first_run() -> None:  # another run's asset step, in its own thread as it would be in its own process
        with FileLock(str(tmp_path / assets.LOCK_FILE)):
            (tmp_path / "synth_d1").mkdir()
            holding.set()
            go_on.wait()
            generate(tmp_path, TINY_DOMAINS)

    threading.Thread(target=first_run, daemon=True).start()  # a failed assert below must not hang pytest
    holding.wait()
    pending = assets.pending_assets(cfg)
    assert len(pending) == 1 and "another run is making" in pending[0]
    go_on.set()
    logged = []
    assets.make_assets(cfg, log=logged.append)
    assert logged == [] and assets.pending_assets(cfg) == []  # waited; generated nothing itself

    shutil.rmtree(tmp_path / "synth_u2")  # as if the first run had been killed before its last domain
    (tmp_path / "synth.json").unlink()
    with pytest.raises(UserError, match="datasets synth --out"):
        assets.pending_assets(cfg)


def test_run_makes_the_assets_in_a_named_step_before_the_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(assets, "DEFAULT_SYNTH", TINY_DOMAINS)
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "fresh"
    sets = [a for k, v in tiny_sets(root, **{"train.batch_p": 2}).items() for a in ("--set", f"{k}={json.dumps(v)}")]
    assert main(["run", "-b", "synth", "-s", "finetune", "--out", "runs", "--no-progress", *sets]) == 0
    out = capsys.readouterr().out
    assert out.index("asset step: making the synthetic domains") < out.index("step 1 (synth_d1)")
    assert (root / "synth.json").is_file() and not (root / "pretrained").exists()  # random weights: no pretraining
    assert main(["run", "-b", "synth", "-s", "finetune", "--out", "runs", "--no-progress", "--name", "again",
                 *sets]) == 0
    assert "asset step" not in capsys.readouterr().out  # nothing left to make


def test_a_data_root_of_another_world_version_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(assets, "DEFAULT_SYNTH", TINY_DOMAINS)
    cfg = resolve_config(benchmark="synth", strategy="finetune",
                         sets={"benchmark.data_root": str(tmp_path), "model.weights": "random"})
    assets.make_assets(cfg, log=lambda *_: None)
    assert assets.pending_assets(cfg) == []
    manifest = tmp_path / "synth.json"
    info = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**info, "world_version": info["world_version"] - 1}))
    with pytest.raises(UserError, match=r"world version \d+, this code makes version \d+; regenerate it"):
        assets.pending_assets(cfg)
