"""What a strategy carries from one experience to the next, besides the model.

The strategy and each of its plugins list the attribute names they carry in `carried`. This module
finds those owners, reads the values, measures them (summary.json reports the bytes) and turns them
into checkpoint entries and back.
"""
from __future__ import annotations

from typing import Any, Iterable

from torch import Tensor, nn

Owner = tuple[str, Any]  # (prefix of the entry names, object holding the attributes)


def carried_owners(strategy: Any, plugins: Iterable[Any]) -> list[Owner]:
    """(prefix, owner) of everything that declares `carried`: the strategy ('') and its plugins
    ('<PluginClass>.')."""
    return [("", strategy)] + [(type(p).__name__ + ".", p) for p in plugins if getattr(p, "carried", ())]


def carried_values(owners: list[Owner]) -> dict[str, Any]:
    return {prefix + name: getattr(owner, name) for prefix, owner in owners for name in owner.carried}


def carried_bytes(owners: list[Owner], model: nn.Module) -> dict[str, int]:
    """Bytes of every carried entry, and of the model under 'model'."""
    sizes = {k: nbytes(v) for k, v in carried_values(owners).items()}
    sizes["model"] = nbytes(model)
    return sizes


def pack_carried(owners: list[Owner]) -> dict[str, tuple[str, Any]]:
    """Checkpoint entries: modules as ("module", state_dict), anything else as ("value", v)."""
    return {k: ("module", v.state_dict()) if isinstance(v, nn.Module) else ("value", v)
            for k, v in carried_values(owners).items()}


def unpack_carried(owners: list[Owner], packed: dict[str, tuple[str, Any]]) -> None:
    """Restore what `pack_carried` wrote onto the same owners."""
    for prefix, owner in owners:
        for name in owner.carried:
            kind, value = packed[prefix + name]
            if kind == "module":
                getattr(owner, name).load_state_dict(value)
            else:
                setattr(owner, name, value)


def nbytes(obj: Any) -> int:
    """Bytes held by tensors in obj (a tensor, module, or nested dict/list/tuple of them)."""
    if isinstance(obj, Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, nn.Module):
        return sum(nbytes(t) for t in list(obj.parameters()) + list(obj.buffers()))
    if isinstance(obj, dict):
        return sum(nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(nbytes(v) for v in obj)
    return 0
