"""`pad-bench export RUN_DIR`: an inference checkpoint of the image encoder (no text tower)."""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..models import model_family
from ..registry import load_strategy_class
from ..results.store import RunStore
from ..training.checkpoint import is_mid_experience, list_checkpoints, load_checkpoint, load_model_state, save_torch


def export_run(run_dir: Path) -> tuple[Path, int, int, int]:
    """Write RUN_DIR/export/image_encoder.pt from the newest finished experience; return
    (path, bytes, the step exported, the run's number of steps)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"{run_dir} is not a run directory (no config.yaml)")
    cfg = RunStore(run_dir).read_config()
    boundaries = [p for p in list_checkpoints(run_dir / "checkpoints") if not is_mid_experience(p)]
    state = load_checkpoint(boundaries[-1]) if boundaries else None
    if state is None:
        raise UserError(f"{run_dir} has no checkpoint yet: export needs at least one finished experience")
    strategy_cls = load_strategy_class(cfg["strategy"]["method"])
    # The checkpoint holds every weight export needs (it may leave out constant ones, e.g. a frozen
    # text tower): no need for (or access to) the pretrained file again.
    model = strategy_cls.build_model({**cfg, "model": {**cfg["model"], "weights": "random"}}, None)
    load_model_state(model, state["strategy"]["model"], boundaries[-1], check_constant=False)
    payload = {
        "state_dict": strategy_cls.export_state(model),
        "model": cfg["model"]["name"],
        "strategy": cfg["strategy"]["name"],
        "image_size": cfg["protocol"]["image_size"],
        "normalization": model_family(cfg["model"]["name"]),
        "step": state["step"],
    }
    path = run_dir / "export" / "image_encoder.pt"
    save_torch(path, payload)
    total = 1 if strategy_cls.sees_union else len(cfg["benchmark"]["domains"])
    return path, path.stat().st_size, state["step"], total
