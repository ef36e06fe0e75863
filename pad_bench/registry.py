"""Explicit name registries (datasets, strategies, models) with helpful unknown-name errors."""
from __future__ import annotations

import difflib
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


def load_strategy_class(method: str):
    """The strategy class registered as `method`, importing `strategies/<method>/` (or
    `strategies/<method>.py`) on first use.

    The module is looked up by name in the strategy folders (the built-in `strategies/`
    and any folder in PAD_BENCH_STRATEGY_PATH); its `@register_strategy(method)` runs on import.
    """
    import importlib
    import importlib.util

    from .paths import STRATEGIES_DIR, strategy_dirs, strategy_module

    if method not in STRATEGIES:
        for d in strategy_dirs():
            path = strategy_module(d, method)
            if path is None:
                continue
            if d.resolve() == STRATEGIES_DIR.resolve():
                importlib.import_module(f"strategies.{method}")
            else:
                spec = importlib.util.spec_from_file_location(f"pad_bench_user_strategies.{method}", path)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
            break
    if method not in STRATEGIES:
        found = {p.stem for d in strategy_dirs() for p in d.glob("*.py")} - {"__init__"}
        found |= {p.parent.name for d in strategy_dirs() for p in d.glob("*/__init__.py")}
        raise unknown_name_error("strategy method", method, found)
    return STRATEGIES.get(method)
