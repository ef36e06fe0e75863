"""Typed hyperparameters: every method declares its `strategy.*` keys once, with type, default,
allowed values or range and a one-line doc, and every config layer is checked against that.

A method's strategy class names its declaration as `Params`, a subclass of the base method's:

    class LSTKCParams(ReIDParams):
        rstkt_weight: float = hp(1.0, "weight of the R-STKT distillation term", ge=0)
        id_weight = 1.0                     # a new default for an inherited key

The annotation is the type (float, int, bool, str, `X | None`, `Literal[...]`, `list[X]`,
`dict[str, X]`); `per_domain=True` also admits one value per training domain (a list) or a
per-dataset table (`{msmt17: ..., first: ..., default: ...}`), resolved before the run starts.
A strategy reads its values as typed attributes: `self.hp.rstkt_weight`.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import types
import typing
from typing import Any, ClassVar, Literal, Union

from .errors import UserError


@dataclasses.dataclass(frozen=True)
class HParam:
    """One declared hyperparameter (see the module docstring)."""

    default: Any
    doc: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    per_domain: bool = False
    name: str = ""
    annotation: Any = None

    # ---- checking ----------------------------------------------------------------------
    def problem(self, value: Any) -> str | None:
        """Why `value` is not allowed (the expectation, in words), or None when it is."""
        ok = _matches(self.annotation, value, self._in_range)
        if not ok and self.per_domain:
            ok = _per_domain_matches(value, lambda v: _matches(self.annotation, v, self._in_range))
        return None if ok else self.describe()

    def _in_range(self, x: float) -> bool:
        if isinstance(x, float) and not math.isfinite(x):
            return False
        return not ((self.ge is not None and x < self.ge) or (self.gt is not None and x <= self.gt)
                    or (self.le is not None and x > self.le) or (self.lt is not None and x >= self.lt))

    def describe(self) -> str:
        """The allowed values in words: 'a float >= 0', 'one of adam, sgd', ..."""
        bounds, words = self.bounds(), _type_words(self.annotation)
        text = f"{bounds} ({words})" if bounds else words
        if self.per_domain:
            text += " (or one per training domain, or a per-dataset table)"
        return text

    def bounds(self) -> str:
        return " and ".join(f"{op} {v:g}" for op, v in ((">=", self.ge), (">", self.gt), ("<=", self.le),
                                                         ("<", self.lt)) if v is not None)

    def type_name(self) -> str:
        return _type_short(self.annotation)


def hp(default: Any, doc: str, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
       lt: float | None = None, per_domain: bool = False) -> Any:
    """Declare a hyperparameter on an `HParams` subclass (the annotation gives its type)."""
    return HParam(default, doc, ge=ge, gt=gt, le=le, lt=lt, per_domain=per_domain)


class HParams:
    """A method's hyperparameters: declared on subclasses, read as typed attributes."""

    specs: ClassVar[dict[str, HParam]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        specs: dict[str, HParam] = {}
        for base in reversed(cls.__mro__[1:]):  # several bases (a method's + a shared part's) all count
            specs.update(base.__dict__.get("specs", {}))
        hints = typing.get_type_hints(cls)
        own = cls.__dict__.get("__annotations__", {})
        for name, value in list(cls.__dict__.items()):
            if name in own:
                if not isinstance(value, HParam):
                    raise TypeError(f"{cls.__name__}.{name}: declare it with hp(default, doc, ...)")
                specs[name] = dataclasses.replace(value, name=name, annotation=hints[name])
            elif name in specs:  # a new default for an inherited key
                specs[name] = dataclasses.replace(specs[name], default=value)
        for name, spec in specs.items():
            problem = spec.problem(spec.default)
            if problem is not None:
                raise TypeError(f"{cls.__name__}.{name}: default {spec.default!r} is not {problem}")
        cls.specs = specs
        for name in specs:  # instances carry the values; the class keeps only `specs`
            if name in cls.__dict__:
                delattr(cls, name)

    def __init__(self, values: dict[str, Any]):
        unknown = set(values) - set(self.specs)
        if unknown:
            raise KeyError(f"{type(self).__name__} declares no {', '.join(sorted(unknown))}")
        for name, spec in self.specs.items():
            setattr(self, name, values[name] if name in values else copy.deepcopy(spec.default))

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """A fresh copy of every default (a config may change its lists and tables in place)."""
        return copy.deepcopy({name: spec.default for name, spec in cls.specs.items()})

    @classmethod
    def check(cls, values: dict[str, Any], origin: dict[str, str] | None = None, prefix: str = "strategy.") -> None:
        """Every key declared, every value of its type and range; else a one-line UserError naming
        the key, the layer that set it (`origin`: key -> source) and the closest valid key."""
        origin = origin or {}
        for name, value in values.items():
            where = origin.get(prefix + name, "config")
            if name not in cls.specs:
                close = difflib.get_close_matches(name, list(cls.specs), n=1, cutoff=0.5)
                hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
                raise UserError(f"{where}: unknown hyperparameter '{prefix}{name}'{hint} "
                                f"(`pad-bench list --params METHOD` lists them)")
            problem = cls.specs[name].problem(value)
            if problem is not None:
                raise UserError(f"{where}: {prefix}{name} is {value!r}; it must be {problem}")

    @classmethod
    def table(cls) -> list[dict[str, str]]:
        """One row per hyperparameter: name, type, default, allowed range, per-domain, doc."""
        return [{"name": s.name, "type": s.type_name(), "default": repr(s.default),
                 "range": s.bounds() or "-",
                 "per_domain": "yes" if s.per_domain else "", "doc": s.doc}
                for s in cls.specs.values()]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={getattr(self, k, None)!r}' for k in self.specs)})"


# ---- the small type language of the annotations ---------------------------------------------
def _matches(ann: Any, value: Any, in_range) -> bool:
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if ann is Any:
        return True
    if ann is type(None) or ann is None:
        return value is None
    if origin in (Union, types.UnionType):
        return any(_matches(a, value, in_range) for a in args)
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin is list:
        return isinstance(value, list) and all(_matches(args[0], v, in_range) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(isinstance(k, str) and _matches(args[1], v, in_range)
                                               for k, v in value.items())
    if ann is bool:
        return isinstance(value, bool)
    if ann is int:
        return isinstance(value, int) and not isinstance(value, bool) and in_range(value)
    if ann is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and in_range(value)
    if ann is str:
        return isinstance(value, str)
    raise TypeError(f"hyperparameter type {ann!r} is not supported")


def _per_domain_matches(value: Any, one) -> bool:
    from .config import is_dataset_table

    if isinstance(value, list):
        return bool(value) and all(one(v) for v in value)
    return is_dataset_table(value) and all(isinstance(k, str) and one(v) for k, v in value.items())


def _type_words(ann: Any) -> str:
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if ann is type(None):
        return "null"
    if origin in (Union, types.UnionType):
        return " or ".join(_type_words(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(_yaml_word(a) for a in args)
    if origin is list:
        return f"a list of {_type_short(args[0])}"
    if origin is dict:
        return f"a mapping of dataset names to {_type_words(args[1])}"
    return {bool: "true or false", int: "an int", float: "a finite number", str: "a string"}.get(ann, str(ann))


def _type_short(ann: Any) -> str:
    """The compact form of the table: float, int | null, adam | sgd, list[int]."""
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if ann is type(None):
        return "null"
    if origin is Literal:
        return " | ".join(_yaml_word(a) for a in args)
    if origin in (Union, types.UnionType):
        return " | ".join(_type_short(a) for a in args)
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(_type_short(a) for a in args)}]"
    return getattr(ann, "__name__", str(ann))


def _yaml_word(v: Any) -> str:
    return {True: "true", False: "false", None: "null"}.get(v, str(v)) if isinstance(v, (bool, type(None))) else str(v)
