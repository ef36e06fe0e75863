"""A strategy's state for checkpoints and resume: what it carries between experiences, what a
boundary checkpoint holds, and what changes inside an experience (docs/runs.md)."""
from __future__ import annotations

from typing import Any

from .carried import carried_owners, carried_values, pack_carried, unpack_carried
from .checkpoint import load_model_state, model_state, rng_state, set_rng_state


class StrategyStateMixin:
    """Checkpoint and resume for a strategy and its plugins (the plugin state contract of base.py)."""

    def carried_owners(self) -> list[tuple[str, Any]]:
        """(prefix, owner) of everything that declares `carried`: the strategy and its plugins."""
        return carried_owners(self, self.plugins)

    def resumable_plugins(self) -> dict[str, Any]:
        """Plugins that implement the state contract's state_dict()/load_state_dict(), by class name."""
        return {type(p).__name__: p for p in self.plugins if callable(getattr(p, "state_dict", None))}

    def carried_state(self) -> dict[str, Any]:
        return carried_values(self.carried_owners())

    def checkpoint_state(self) -> dict:
        """Everything a boundary checkpoint (after an experience) holds of the strategy."""
        carried = pack_carried(self.carried_owners())
        return {"model": model_state(self.model), "carried": carried, "exp_index": self.exp_index,
                "images_seen": self.images_seen, "param_history": self.param_history,
                "experience_history": self.experience_history,
                "plugins": {k: p.state_dict() for k, p in self.resumable_plugins().items()}}

    def load_checkpoint_state(self, state: dict, source: str = "checkpoint") -> None:
        load_model_state(self.model, state["model"], source)
        unpack_carried(self.carried_owners(), state["carried"])
        self.exp_index = state["exp_index"]
        self.images_seen = state["images_seen"]
        self.param_history = state["param_history"]
        self.experience_history = state.get("experience_history", [])
        self._load_plugin_states(state.get("plugins", {}))

    def _load_plugin_states(self, states: dict) -> None:
        for name, plugin in self.resumable_plugins().items():
            plugin.load_state_dict(states.get(name, {}))

    def mid_experience_state(self) -> dict:
        """Everything that changes inside an experience, after `self.epoch` epochs of it."""
        return {"model": model_state(self.model), "optimizer": self.optimizer.state_dict(), "epoch": self.epoch,
                "images_seen": self.images_seen, "rng": rng_state(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else {},
                "plugins": {k: p.state_dict() for k, p in self.resumable_plugins().items()}}

    def load_mid_experience_state(self, state: dict) -> None:
        """Continue after the set-up of the experience was replayed: weights, optimizer, epoch, plugins, RNG."""
        load_model_state(self.model, state["model"], "the mid-experience checkpoint")
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.images_seen = state["epoch"], state["images_seen"]
        self._load_plugin_states(state["plugins"])
        set_rng_state(state["rng"])
