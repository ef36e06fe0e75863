"""Run configuration: layered YAML, dotted `--set` overrides, validation with one-line errors.

Layers, later wins: pad_bench/configs/defaults.yaml < benchmark YAML < strategy YAML < the strategy's
profile (named by --profile, else the benchmark's `default_profile`) < --set key=value.
A key that no layer defines is an error (with the closest valid key), and so is a value whose
type differs from the default's.
"""
from __future__ import annotations

import copy
import difflib
import re
from pathlib import Path
from typing import Any, Iterable

import yaml

from .errors import UserError
from .paths import BENCHMARKS_DIR, DEFAULTS_FILE, strategy_dirs
from .registry import unknown_name_error
# Sections whose contents are free-form per method/dataset: new keys may be introduced there
# by a benchmark or strategy file (not by --set, which must name an existing key).
OPEN_SECTIONS = ("strategy", "protocol.dataset_options", "model")


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot read config file {path}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}{where}: invalid YAML ({getattr(e, 'problem', e)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}. Lists and scalars are leaves."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
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


def merge_layer(cfg: dict, layer: dict, source: str, *, allow_new: bool) -> None:
    """Merge `layer` (nested or with dotted keys) into cfg in place, validating keys and types."""
    flat_cfg = flatten(cfg)
    for key, value in flatten(layer).items():
        if key in flat_cfg:
            if not _type_ok(flat_cfg[key], value):
                raise UserError(
                    f"{source}: '{key}' must be {_type_name(flat_cfg[key])} "
                    f"(like the default {flat_cfg[key]!r}), got {_type_name(value)} {value!r}"
                )
        elif not (allow_new and _in_open_section(key)) and not _is_new_subtree(flat_cfg, key, allow_new):
            raise _unknown_key(source, key, flat_cfg)
        set_dotted(cfg, key, copy.deepcopy(value))


def _in_open_section(key: str) -> bool:
    return any(key.startswith(s + ".") for s in OPEN_SECTIONS)


def _is_new_subtree(flat_cfg: dict, key: str, allow_new: bool) -> bool:
    # A dotted key under an existing empty mapping (e.g. `profiles: {}`) may be added by files.
    return allow_new and any(key.startswith(k + ".") and flat_cfg[k] == {} for k in flat_cfg)


def _unknown_key(source: str, key: str, flat_cfg: dict) -> UserError:
    close = difflib.get_close_matches(key, list(flat_cfg), n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return UserError(f"{source}: unknown config key '{key}'{hint}")


def parse_set(items: Iterable[str]) -> dict[str, Any]:
    """['a.b=3', 'c=[1,2]'] -> {'a.b': 3, 'c': [1, 2]} (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--set '{item}': expected key=value, e.g. --set train.epochs=2")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
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


def find_benchmark_file(name: str) -> Path:
    path = BENCHMARKS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise unknown_name_error("benchmark", name, list_benchmarks())
    return path


def list_benchmarks() -> list[str]:
    return sorted(p.stem for p in BENCHMARKS_DIR.glob("*.yaml"))


def strategy_files() -> dict[str, Path]:
    """Strategy name -> its YAML: every `<method folder>/<name>.yaml` in the strategy folders
    (a folder of PAD_BENCH_STRATEGY_PATH shadows a built-in name)."""
    found: dict[str, Path] = {}
    for d in strategy_dirs():
        for path in sorted(d.glob("*/*.yaml")) if d.is_dir() else ():
            found.setdefault(path.stem, path)
    return found


def find_strategy_file(name: str) -> Path:
    files = strategy_files()
    if name not in files:
        raise unknown_name_error("strategy", name, files)
    return files[name]


def list_strategies() -> list[str]:
    return sorted(strategy_files())


def strategy_layers(name: str, _seen: tuple = ()) -> list[tuple[str, dict]]:
    """A strategy YAML and the chain of YAMLs it names as `base:`, base first.

    A YAML without `strategy.method` runs the method of its own folder (`<folder>/strategy.py`)."""
    if name in _seen:
        raise UserError(f"strategy YAML '{name}' inherits from itself via base: {' -> '.join(_seen)}")
    path = find_strategy_file(name)
    layer = load_yaml(path)
    base = layer.pop("base", None)
    layer.pop("description", None)
    layers = strategy_layers(base, _seen + (name,)) if base else []
    layer.setdefault("strategy", {}).setdefault("method", path.parent.name)
    return layers + [(f"{path.parent.name}/{path.name}", layer)]


def strategy_description(name: str) -> str:
    return str(load_yaml(find_strategy_file(name)).get("description", ""))


def resolve_config(
    *,
    benchmark: str,
    strategy: str,
    sets: dict[str, Any] | None = None,
    profile: str | None = None,
) -> dict:
    """The fully merged config for one run (not yet annotated with versions/git)."""
    cfg = load_yaml(DEFAULTS_FILE)
    bench_file = find_benchmark_file(benchmark)
    bench = load_yaml(bench_file)
    default_profile = bench.pop("default_profile", None)
    merge_layer(cfg, bench, str(bench_file), allow_new=True)
    cfg["benchmark"]["name"] = benchmark

    strat_file = find_strategy_file(strategy)
    profiles: dict = {}
    for name, layer in strategy_layers(strategy):
        for pname, pvalues in (layer.pop("profiles", {}) or {}).items():
            profiles[pname] = {**profiles.get(pname, {}), **flatten(pvalues)}
        merge_layer(cfg, layer, f"strategies/{name}", allow_new=True)
    cfg["strategy"]["name"] = strategy

    chosen = profile if profile is not None else default_profile
    for name in (chosen or "").split(","):
        if not name:
            continue
        if name not in profiles:
            raise UserError(
                f"strategy '{strategy}' has no profile '{name}' "
                f"(profiles in {strat_file.name}: {', '.join(sorted(profiles)) or 'none'})"
            )
        merge_layer(cfg, profiles[name], f"{strat_file.name} profile '{name}'", allow_new=True)
    cfg["profile"] = chosen or ""
    if sets:
        merge_layer(cfg, sets, "--set", allow_new=False)
    validate(cfg)
    return cfg


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
    n = len(cfg["benchmark"]["domains"])
    epochs = cfg["train"]["epochs"]
    if isinstance(epochs, list) and len(epochs) != n:
        raise UserError(f"train.epochs has {len(epochs)} values but the benchmark has {n} domains")


def per_domain(value: Any, index: int) -> Any:
    """A config value that is either one scalar or one entry per training domain."""
    if isinstance(value, list):
        return value[min(index, len(value) - 1)]
    return value
