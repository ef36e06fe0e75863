"""Name registries with helpful unknown-name errors.

Two kinds, each name set once: `Registry` for classes that register themselves with a decorator
(datasets, strategy classes) and `FileTable` for data found by file name (benchmarks, strategy
YAMLs, method folders, model configs, recipe layers). A name defined twice is an error.
"""
from __future__ import annotations

import difflib
import traceback
from pathlib import Path
from typing import Callable, Generic, Iterable, TypeVar

from . import paths
from .errors import UserError

T = TypeVar("T")


def unknown_name_error(kind: str, name: str, valid: Iterable[str]) -> UserError:
    """A one-line error naming the bad value, the closest valid one and the full list."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return UserError(f"unknown {kind} '{name}'.{hint} Valid {_plural(kind)}: {', '.join(valid) or '(none)'}")


def _plural(kind: str) -> str:
    return kind[:-1] + "ies" if kind.endswith("y") and kind[-2:-1] not in "aeiou" else kind + "s"


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


class FileTable:
    """Names of data files matching `pattern` in some folders: the file stem, or with
    `by_folder` the name of the folder holding the file. Folders are read on every call, so that
    files a user adds (and PAD_BENCH_STRATEGY_PATH) count at once."""

    def __init__(self, kind: str, folders: Callable[[], list[Path]], pattern: str, *, by_folder: bool = False):
        self.kind, self.folders, self.pattern, self.by_folder = kind, folders, pattern, by_folder

    def files(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for folder in self.folders():
            for path in sorted(folder.glob(self.pattern)) if folder.is_dir() else ():
                name = path.parent.name if self.by_folder else path.stem
                if name in found:
                    raise UserError(f"{self.kind} '{name}' is defined twice: {found[name]} and {path}; rename one")
                found[name] = path
        return found

    def path(self, name: str) -> Path:
        files = self.files()
        if name not in files:
            raise unknown_name_error(self.kind, name, files)
        return files[name]

    def names(self) -> list[str]:
        return sorted(self.files())

    def __contains__(self, name: object) -> bool:
        return name in self.files()


BENCHMARKS = FileTable("benchmark", lambda: [paths.BENCHMARKS_DIR], "*.yaml")
STRATEGY_FILES = FileTable("strategy", paths.strategy_dirs, "*/*.yaml")
METHODS = FileTable("strategy method", paths.strategy_dirs, "*/strategy.py", by_folder=True)
MODELS = FileTable("model", lambda: [paths.MODEL_CONFIGS_DIR], "*.yaml")
RECIPES = FileTable("recipe", lambda: [paths.RECIPES_DIR], "*.yaml")


def load_strategy_class(method: str):
    """The strategy class registered as `method`, importing `<method folder>/strategy.py` on first use.

    Every method folder is imported as `pad_bench.strategies.<method>`: the package's search path is
    the strategy folders (PAD_BENCH_STRATEGY_PATH first, then the built-in one), so a folder's
    modules import each other relatively and a copied folder runs its own copies. The module's
    `@register_strategy(method)` runs on import.
    """
    import importlib

    from . import strategies

    if method not in STRATEGIES:
        METHODS.path(method)  # an unknown method lists the valid ones
        strategies.__path__[:] = [str(d) for d in paths.strategy_dirs()]
        try:
            importlib.import_module(f"{strategies.__name__}.{method}.strategy")
        except Exception as e:  # the user's code: any error at import is theirs, reported where it is
            raise UserError(f"cannot import method '{method}': {_where(e, METHODS.path(method).parent)}") from None
        if method not in STRATEGIES:
            raise UserError(f"{METHODS.path(method)} does not register a strategy named '{method}' "
                            f"(decorate its class with @register_strategy('{method}'))")
    return STRATEGIES.get(method)


def _where(e: Exception, folder: Path) -> str:
    """'FILE line N: Type: message' for an exception raised while importing a method folder: the
    offending line itself for a SyntaxError, else the deepest frame inside the folder (its import
    statement, for an error in a library it imports)."""
    first = (str(e).strip().splitlines() or [""])[0]
    if isinstance(e, SyntaxError):
        return f"{e.filename} line {e.lineno}: {type(e).__name__}: {e.msg}"
    frames = traceback.extract_tb(e.__traceback__)
    inside = [f for f in frames if Path(f.filename).resolve().is_relative_to(folder.resolve())] or frames[-1:]
    where = f"{inside[-1].filename} line {inside[-1].lineno}: " if inside else ""
    return f"{where}{type(e).__name__}: {first}"
