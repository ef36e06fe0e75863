"""From a resolved config to a strategy: the checks before anything is written, the config's final
resolution, and the strategy itself. `run`, `run --dry-run`, `export`, the perf scripts and the tests
all build through here."""
from __future__ import annotations

from typing import Any, Callable, Iterable

from ..config import resolve_dataset_tables
from ..data.datasets import create_dataset
from ..errors import UserError
from ..models.weights import resolve_weights
from ..registry import MODELS, load_strategy_class
from ..synthetic.assets import pending_assets, point_at_pretrained
from ..training.run_context import RunContext


def finalize(cfg: dict, *, check_data: bool = True):
    """Check every name and file the run needs, then resolve the strategy's switches, every
    per-dataset table and the weights file in place; returns the strategy class. Nothing is written
    to a run directory before this has passed. `check_data=False` (a model-only perf script) skips
    looking for the datasets."""
    MODELS.path(cfg["model"]["name"])  # an unknown model lists the valid ones
    _check_device(cfg["device"])
    if not str(cfg["device"]).startswith("cuda"):  # autocast and the scaler are CUDA-only: record what runs
        cfg["train"]["precision"] = "fp32"
    strategy_cls = load_strategy_class(cfg["strategy"]["method"])
    strategy_cls.finalize_config(cfg)
    resolve_dataset_tables(cfg)  # the tables a strategy left: `first` at position 0
    if check_data:
        _check_assets(cfg)
        _check_datasets(cfg)
    point_at_pretrained(cfg)  # the synthetic benchmark's pretrained file, made by the asset step
    # a missing pretrained file fails here, before any data is read or a run directory exists
    cfg["model"]["weights"] = resolve_weights(cfg["model"]["name"], cfg["model"].get("weights"))
    return strategy_cls


def build_strategy(cfg: dict, bench, *, device: str = "cpu", plugins: Iterable = (), evaluator=None,
                   resume: dict | None = None, epoch_checkpoint: Callable[[Any], None] | None = None):
    """The configured strategy on its freshly built model, for the stream `bench` (a finalized cfg),
    applying the stream's device-side transforms; `resume` and `epoch_checkpoint` as in RunContext."""
    strategy_cls = load_strategy_class(cfg["strategy"]["method"])
    model = strategy_cls.build_model(cfg, bench)
    run = RunContext(device_input=bench.device_input, resume=resume, epoch_checkpoint=epoch_checkpoint)
    return strategy_cls(model=model, cfg=cfg, num_classes=bench.num_classes, class_offsets=bench.class_offsets,
                        device=str(device), plugins=list(plugins), evaluator=evaluator, run=run)


def _check_device(name: str) -> None:
    if name.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UserError("device 'cuda' requested but no CUDA GPU is available; use --device cpu")


def _check_assets(cfg: dict) -> None:
    """A synthetic run's data and weights exist: resolving a config never makes them."""
    pending = pending_assets(cfg)
    if pending:
        raise UserError(f"the run needs {'; '.join(pending)}: `pad-bench run` makes them in its asset step "
                        f"(by hand: `pad-bench datasets synth --out {cfg['benchmark']['data_root']} [--pretrain]`)")


def _check_datasets(cfg: dict) -> None:
    """Every training and unseen dataset is registered and found under the data root."""
    b = cfg["benchmark"]
    for name in list(b["domains"]) + list(b["unseen"]):
        create_dataset(name, b["data_root"], **cfg["protocol"]["dataset_options"]).resolve_root()
