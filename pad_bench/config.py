"""Run configuration: layered YAML, dotted `--set` overrides, validation with one-line errors.

Layers, later wins: pad_bench/configs/defaults.yaml < benchmark YAML < strategy YAML < the strategy's
profile (named by --profile, else the benchmark's `default_profile`) < --set key=value.
A key that no layer defines is an error (with the closest valid key), and so is a value whose
type differs from the default's.
"""
from __future__ import annotations

import copy
import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from .errors import UserError
from .paths import DEFAULTS_FILE, STRATEGIES_DIR
from .registry import BENCHMARKS, METHODS, RECIPES, STRATEGY_FILES, load_strategy_class, unknown_name_error
from .yamlio import parse_yaml, read_yaml
# Sections whose contents are free-form per dataset/model: new keys may be introduced there by a
# benchmark or strategy file (not by --set, which must name an existing key). The `strategy` section is
# closed: its keys are the method's declared hyperparameters (pad_bench/hparams.py).
OPEN_SECTIONS = ("protocol.dataset_options", "model")


def load_yaml(path: str | Path) -> dict:
    data = read_yaml(path, "config file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}. Lists, scalars and per-dataset tables (see per_domain) are leaves."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and not is_dataset_table(v):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def get_dotted(cfg: dict, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = node[part]
    return node


def set_dotted(cfg: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = cfg
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


def _type_ok(default: Any, value: Any) -> bool:
    if default is None or value is None:
        return True
    if is_dataset_table(value):  # per-dataset tables: every entry like the default (or its default entry)
        return all(_type_ok(default, v) for v in value.values())
    if is_dataset_table(default):
        return _type_ok(default[TABLE_DEFAULT], value)
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, (int, float)) and isinstance(value, (int, float)):
        return isinstance(default, float) or isinstance(value, int)  # no float into an int key
    if isinstance(default, (int, float)) and isinstance(value, list):
        return True  # one value per training domain
    if isinstance(default, list) and isinstance(value, (int, float)):
        return all(isinstance(x, (int, float)) for x in default)  # per-domain list -> one value
    if (default == "all" and isinstance(value, int)) or (isinstance(default, int) and value == "all"):
        return True  # a count or "all", e.g. ids_per_domain
    return isinstance(value, type(default))


def _type_name(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def merge_layer(cfg: dict, layer: dict, source: str, *, allow_new: bool,
                origin: dict[str, str] | None = None) -> None:
    """Merge `layer` (nested or with dotted keys) into cfg in place, validating keys and types.
    `origin` (key -> source) records which layer set each key; the `strategy.*` values are checked
    against the method's declared hyperparameters once every layer is in (`check_hparams`)."""
    flat_cfg = flatten(cfg)
    for key, value in flatten(layer).items():
        if key in flat_cfg:
            if not key.startswith("strategy.") and not _type_ok(flat_cfg[key], value):
                raise UserError(
                    f"{source}: '{key}' must be {_type_name(flat_cfg[key])} "
                    f"(like the default {flat_cfg[key]!r}), got {_type_name(value)} {value!r}"
                )
        elif not (allow_new and _in_open_section(key)) and not _is_new_subtree(flat_cfg, key, allow_new):
            raise _unknown_key(source, key, flat_cfg)
        set_dotted(cfg, key, copy.deepcopy(value))
        if origin is not None:
            origin[key] = source


def _in_open_section(key: str) -> bool:
    return any(key.startswith(s + ".") for s in OPEN_SECTIONS)


def _is_new_subtree(flat_cfg: dict, key: str, allow_new: bool) -> bool:
    # A dotted key under an existing empty mapping (e.g. `profiles: {}`) may be added by files.
    return allow_new and any(key.startswith(k + ".") and flat_cfg[k] == {} for k in flat_cfg)


def _unknown_key(source: str, key: str, flat_cfg: dict) -> UserError:
    close = difflib.get_close_matches(key, list(flat_cfg), n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    what = "hyperparameter" if key.startswith("strategy.") else "config key"
    return UserError(f"{source}: unknown {what} '{key}'{hint}")


def parse_set(items: Iterable[str]) -> dict[str, Any]:
    """['a.b=3', 'c=[1,2]'] -> {'a.b': 3, 'c': [1, 2]} (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--set '{item}': expected key=value, e.g. --set train.epochs=2")
        key, raw = item.split("=", 1)
        try:
            value = parse_yaml(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        out[key.strip()] = _number_or_str(value)
    return out


_EXPONENT_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def _number_or_str(value: Any) -> Any:
    """YAML reads '3e-3' as a string (it wants '3.0e-3'); a command line means the number."""
    if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value):
        return float(value)
    return value


# Keys a file may hold besides config values: they describe the file, they are not merged.
META_KEYS = ("description", "base", "default_profile", "profiles", "demo")
# The values of a method YAML's `demo:` key: `headline` puts the method in `pad-bench demo`'s default set.
DEMO_FLAGS = ("headline",)


@dataclass
class Layer:
    """One config file, read by `load_layer`: flat dotted values (its recipes merged in first),
    its meta keys, and its profiles (each flat, recipes merged in)."""

    source: str
    values: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)


def load_layer(path: Path, *, source: str | None = None, _seen: tuple[str, ...] = ()) -> Layer:
    """The one loader of every config file: defaults, benchmarks, strategy YAMLs, recipes.

    A file (or one of its profiles) may name shared recipe layers as `use: [name, ...]`
    (pad_bench/configs/recipes/<name>.yaml); they are merged first, in order, then the file's own
    values. Nested mappings and dotted keys mean the same."""
    data = load_yaml(path)
    source = source or str(path)
    meta = {k: data.pop(k) for k in META_KEYS if k in data}
    profiles = {name: _with_recipes(values or {}, f"{source} profile '{name}'", _seen)
                for name, values in (meta.pop("profiles", None) or {}).items()}
    return Layer(source, _with_recipes(data, source, _seen), meta, profiles)


def _with_recipes(data: dict, source: str, seen: tuple[str, ...]) -> dict[str, Any]:
    data = dict(data)
    uses = data.pop("use", []) or []
    if not isinstance(uses, list):
        raise UserError(f"{source}: 'use' must be a list of recipe names, got {uses!r}")
    values: dict[str, Any] = {}
    for name in uses:
        if name in seen:
            raise UserError(f"{source}: recipe '{name}' uses itself via {' -> '.join(seen + (name,))}")
        values.update(load_layer(RECIPES.path(name), source=f"recipe {name}", _seen=seen + (name,)).values)
    values.update(flatten(data))
    return values


def list_benchmarks() -> list[str]:
    return BENCHMARKS.names()


def benchmark_layer(name: str) -> Layer:
    return load_layer(BENCHMARKS.path(name), source=f"benchmarks/{name}.yaml")


def list_strategies() -> list[str]:
    return STRATEGY_FILES.names()


def strategy_layers(name: str, _seen: tuple = ()) -> list[Layer]:
    """A strategy YAML and the chain of YAMLs it names as `base:`, base first.

    A YAML without `strategy.method` runs the method of its own folder (`<folder>/strategy.py`)."""
    if name in _seen:
        raise UserError(f"strategy YAML '{name}' inherits from itself via base: {' -> '.join(_seen)}")
    path = STRATEGY_FILES.path(name)
    packaged = path.parent.parent.resolve() == STRATEGIES_DIR.resolve()
    layer = load_layer(path, source=f"strategies/{path.parent.name}/{path.name}" if packaged else str(path))
    base = layer.meta.get("base")
    layers = strategy_layers(base, _seen + (name,)) if base else []
    layer.values.setdefault("strategy.method", path.parent.name)
    return layers + [layer]


def check_method(method: str, strategy: str) -> None:
    """The strategy YAML's `strategy.method` must name a method folder (without importing it: fast)."""
    if method not in METHODS:
        raise UserError(f"strategy '{strategy}' uses {unknown_name_error('strategy method', str(method), METHODS.names())}")


def strategy_description(name: str) -> str:
    return str(load_layer(STRATEGY_FILES.path(name)).meta.get("description", ""))


def demo_flag(name: str) -> str | None:
    """The strategy YAML's own `demo:` flag (not inherited through `base:`), or None."""
    path = STRATEGY_FILES.path(name)
    flag = load_layer(path).meta.get("demo")
    if flag is not None and flag not in DEMO_FLAGS:
        raise UserError(f"{path}: demo: {flag!r} is not a demo flag; use {' or '.join(DEMO_FLAGS)}, or drop the key")
    return flag


def resolve_config(
    *,
    benchmark: str,
    strategy: str,
    sets: dict[str, Any] | None = None,
    profile: str | None = None,
) -> dict:
    """The fully merged config for one run (not yet annotated with versions/git)."""
    return apply_sets(layered_config(benchmark=benchmark, strategy=strategy, profile=profile), sets)


def layered_config(*, benchmark: str, strategy: str, profile: str | None = None) -> dict:
    """Defaults, benchmark, strategy YAMLs and profiles merged: resolve_config before --set. A sweep
    makes it once per benchmark, strategy and profile and copies it for every run."""
    cfg = nested(load_layer(DEFAULTS_FILE).values)
    bench = benchmark_layer(benchmark)
    merge_layer(cfg, bench.values, bench.source, allow_new=True)
    cfg["benchmark"]["name"] = benchmark

    layers = strategy_layers(strategy)
    method = layers[-1].values["strategy.method"]
    check_method(method, strategy)
    cfg["strategy"].update(hparams_of(method).defaults())
    origin: dict[str, str] = {}
    profiles: dict = {}
    for layer in layers:
        for pname, pvalues in layer.profiles.items():
            profiles[pname] = {**profiles.get(pname, {}), **pvalues}
        merge_layer(cfg, layer.values, layer.source, allow_new=True, origin=origin)
    cfg["strategy"]["name"] = strategy

    chosen = profile if profile is not None else bench.meta.get("default_profile")
    for name in (chosen or "").split(","):
        if not name:
            continue
        if name not in profiles:
            raise UserError(
                f"strategy '{strategy}' has no profile '{name}' "
                f"(profiles in {layers[-1].source}: {', '.join(sorted(profiles)) or 'none'})"
            )
        merge_layer(cfg, profiles[name], f"{layers[-1].source} profile '{name}'", allow_new=True, origin=origin)
    cfg["profile"] = chosen or ""
    check_hparams(cfg, origin)  # each value against its declaration, naming the file that set it
    return cfg


def apply_sets(cfg: dict, sets: dict[str, Any] | None) -> dict:
    """Merge the --set overrides into a layered config (in place) and validate it."""
    if sets:
        merge_layer(cfg, sets, "--set", allow_new=False)
        check_hparams(cfg, {key: "--set" for key in flatten(sets)})  # the layers' values passed already
    validate(cfg)
    return cfg


def hparams_of(method: str):
    """The declared hyperparameters (an HParams class) of a method folder's strategy."""
    return load_strategy_class(method).Params


def check_hparams(cfg: dict, origin: dict[str, str] | None = None) -> None:
    """Every `strategy.*` key declared by the method, of its type and range (one line naming the layer)."""
    hparams_of(cfg["strategy"]["method"]).check(cfg["strategy"], origin)


def nested(flat: dict[str, Any]) -> dict:
    """{'a.b': 1} -> {'a': {'b': 1}}."""
    out: dict = {}
    for key, value in flat.items():
        set_dotted(out, key, copy.deepcopy(value))
    return out


def validate(cfg: dict) -> None:
    """Cross-field checks the type check cannot do."""
    p = cfg["protocol"]
    if p["id_select"] not in ("first_500_sorted", "all"):
        raise UserError(f"protocol.id_select must be first_500_sorted or all, got {p['id_select']!r}")
    ids = p["ids_per_domain"]
    if not (ids == "all" or (isinstance(ids, int) and ids > 0)):
        raise UserError(f"protocol.ids_per_domain must be a positive int or 'all', got {ids!r}")
    if p["unseen_protocol"] not in ("single_split", "pad_multi_split"):
        raise UserError(
            f"protocol.unseen_protocol must be single_split or pad_multi_split, got {p['unseen_protocol']!r}"
        )
    size = p["image_size"]
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size)):
        raise UserError(f"protocol.image_size must be [height, width], got {size!r}")
    if cfg["device"] not in ("cpu", "cuda") and not str(cfg["device"]).startswith("cuda:"):
        raise UserError(f"device must be cpu or cuda, got {cfg['device']!r}")
    if not cfg["benchmark"]["domains"]:
        raise UserError(f"benchmark '{cfg['benchmark']['name']}' lists no training domains")
    train = cfg["train"]
    workers = train["num_workers"]
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        raise UserError(f"train.num_workers must be an int >= 0 or null (one per available CPU), got {workers!r}")
    if train["precision"] not in PRECISIONS:
        raise UserError(f"train.precision must be one of {', '.join(PRECISIONS)}, got {train['precision']!r}")
    if train["data_path"] not in ("pil", "cached"):
        raise UserError(f"train.data_path must be pil or cached, got {train['data_path']!r}")
    n = len(cfg["benchmark"]["domains"])
    epochs = cfg["train"]["epochs"]
    if isinstance(epochs, list) and len(epochs) != n:
        raise UserError(f"train.epochs has {len(epochs)} values but the benchmark has {n} domains")
    if cfg["benchmark"].get("fingerprint", "stat") not in ("stat", "content"):
        raise UserError(f"benchmark.fingerprint must be stat or content, got {cfg['benchmark']['fingerprint']!r}")
    for key, low, high in RANGES:
        _check_range(key, get_dotted(cfg, key), low, high)
    check_numbers(cfg)


PRECISIONS = ("fp32", "bf16", "fp16")  # train.precision: the dtype of autocast on CUDA (fp32: none)

# (dotted key, lowest, highest) allowed, inclusive; None = unbounded. Per-domain lists and per-dataset
# tables are checked entry by entry.
RANGES = (
    ("seed", 0, 2**32 - 1),
    ("train.epochs", 1, None),
    ("train.batch_p", 2, None),
    ("train.batch_k", 1, None),
    ("train.pad", 0, None),
    ("train.random_erasing", 0, 1),
    ("train.eval_batch_size", 1, None),
    ("train.checkpoint_every_epochs", 0, None),
)


def _check_range(key: str, value: Any, low: float | None, high: float | None) -> None:
    """Every number in value (a scalar, list or per-dataset table) within [low, high]."""
    if isinstance(value, dict):  # a per-dataset table: {dataset: value, default: value}
        value = list(value.values())
    for v in value if isinstance(value, list) else [value]:
        if isinstance(v, (list, dict)):
            _check_range(key, v, low, high)
            continue
        if v is None or isinstance(v, str):
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                or (low is not None and v < low) or (high is not None and v > high):
            bounds = f"between {low} and {high}" if high is not None else f">= {low}"
            raise UserError(f"{key} is {v!r}; it must be {bounds}")


def check_numbers(cfg: dict) -> None:
    """Refuse a NaN or infinite number anywhere in the config (the `strategy.*` ranges are the methods'
    declarations, checked by check_hparams)."""
    for key, value in flatten(cfg).items():
        for v in _numbers(value):
            if not math.isfinite(v):
                raise UserError(f"{key} is {v!r}; give a finite number")


def _numbers(value: Any) -> Iterable[float]:
    if isinstance(value, float):
        yield value
    elif isinstance(value, (list, dict)):
        for v in value.values() if isinstance(value, dict) else value:
            yield from _numbers(v)


def per_domain(value: Any, index: int) -> Any:
    """A resolved per-domain value: one scalar, or one entry per training domain (the last repeats)."""
    if isinstance(value, list):
        return value[min(index, len(value) - 1)]
    return value


# ---- per-domain tables ------------------------------------------------------------------------
# A per-domain setting is written in one of three forms:
#   a scalar (every domain), a list (one entry per training position, the last repeats), or a
#   per-dataset table: a mapping from dataset names to values with a `default` entry for the other
#   datasets and optionally a `first` entry for the first domain (which domain that is, is the
#   strategy's choice: position 0 unless it says otherwise). Tables are leaves of the config: `--set
#   train.epochs=2` replaces a whole table. resolve_dataset_tables turns every table into a list by
#   position before the run starts, so config.yaml records what each position runs.
TABLE_DEFAULT, TABLE_FIRST = "default", "first"


def is_dataset_table(value: Any) -> bool:
    return isinstance(value, dict) and TABLE_DEFAULT in value


def dataset_table_row(table: dict, name: str, is_first: bool) -> Any:
    """The entry of a per-dataset table for dataset `name`: `first` wins for the first domain, then
    the dataset's own entry, then `default`."""
    if is_first and TABLE_FIRST in table:
        return table[TABLE_FIRST]
    return table.get(name, table[TABLE_DEFAULT])


def resolve_dataset_tables(cfg: dict, first_index: int | None = 0) -> dict[str, list]:
    """Replace every per-dataset table under train/strategy by a list over the benchmark's domains;
    `first_index` is the position the `first` entries go to (None: nowhere). Returns the resolved
    keys and their lists; an already resolved config is left as it is."""
    names = list(cfg["benchmark"]["domains"])
    resolved = {}
    for section in ("train", "strategy"):
        for key, value in flatten(cfg[section], section + ".").items():
            if is_dataset_table(value):
                rows = [copy.deepcopy(dataset_table_row(value, n, i == first_index)) for i, n in enumerate(names)]
                set_dotted(cfg, key, rows)
                resolved[key] = rows
    return resolved
