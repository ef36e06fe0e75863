"""Explicit name registries (datasets, strategies, models) with helpful unknown-name errors."""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Callable, Generic, Iterable, TypeVar

from .errors import UserError

T = TypeVar("T")


def unknown_name_error(kind: str, name: str, valid: Iterable[str]) -> UserError:
    """A one-line error naming the bad value, the closest valid one and the full list."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return UserError(f"unknown {kind} '{name}'.{hint} Valid {kind}s: {', '.join(valid) or '(none)'}")


class Registry(Generic[T]):
    """A name -> object table filled by a `register(name)` decorator."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        if name not in self._items:
            raise unknown_name_error(self.kind, name, self._items)
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items


STRATEGIES: Registry = Registry("strategy")
register_strategy = STRATEGIES.register


def method_folders() -> dict[str, Path]:
    """Method name -> its folder: every folder holding a `strategy.py` in the strategy folders
    (a folder of PAD_BENCH_STRATEGY_PATH shadows a built-in method of the same name)."""
    from .paths import strategy_dirs

    found: dict[str, Path] = {}
    for d in strategy_dirs():
        for module in sorted(d.glob("*/strategy.py")) if d.is_dir() else ():
            found.setdefault(module.parent.name, module.parent)
    return found


def load_strategy_class(method: str):
    """The strategy class registered as `method`, importing `<method folder>/strategy.py` on first use.

    Every method folder is imported as `pad_bench.strategies.<method>`: the package's search path is
    the strategy folders (PAD_BENCH_STRATEGY_PATH first, then the built-in one), so a folder's
    modules import each other relatively and a copied folder runs its own copies. The module's
    `@register_strategy(method)` runs on import.
    """
    import importlib

    from . import strategies
    from .paths import strategy_dirs

    if method not in STRATEGIES:
        folders = method_folders()
        if method in folders:
            strategies.__path__[:] = [str(d) for d in strategy_dirs()]
            importlib.import_module(f"{strategies.__name__}.{method}.strategy")
        if method not in STRATEGIES:
            raise unknown_name_error("strategy method", method, folders)
    return STRATEGIES.get(method)
