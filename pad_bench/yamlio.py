"""Reading the YAML a user gives: UTF-8 only, no duplicate keys, no alias bombs.

PyYAML's safe loader keeps the last of two equal keys without a word, and an anchor reused by
aliases costs nothing to parse but expands when the data is copied, flattened or hashed: nine
levels of nine aliases are 9**9 values. `StrictLoader` refuses both, with the line, so that every
config file, sweep spec and `--set` value means what it says.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import UserError

MAX_EXPANDED_VALUES = 100_000  # a config holds a few hundred; far above any real file, far below a bomb


class StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser where installed: ~10x faster
    """yaml.SafeLoader that refuses duplicate keys and aliases expanding past MAX_EXPANDED_VALUES."""

    def get_single_node(self) -> Node | None:
        node = super().get_single_node()
        if node is not None:
            _expanded_size(node, {}, set())
        return node

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node)
            if key in seen:
                raise ConstructorError(None, None, f"duplicate key '{key}'; keep one", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """How many values `node` stands for once every alias is expanded (each distinct node counted once)."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_nodes:
        raise ComposerError(None, None, "an alias refers to a value that contains it", node.start_mark)
    size = 1
    if isinstance(node, (SequenceNode, MappingNode)):
        open_nodes.add(id(node))
        children = node.value if isinstance(node, SequenceNode) else [n for pair in node.value for n in pair]
        size += sum(_expanded_size(child, sizes, open_nodes) for child in children)
        open_nodes.discard(id(node))
        if size > MAX_EXPANDED_VALUES:
            raise ComposerError(None, None, f"its aliases expand to more than {MAX_EXPANDED_VALUES} values; "
                                            "write the values out", node.start_mark)
    sizes[id(node)] = size
    return size


def parse_yaml(text: str) -> Any:
    """yaml.safe_load with StrictLoader's checks; raises yaml.YAMLError."""
    return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - StrictLoader is a SafeLoader


def read_yaml(path: str | Path, what: str) -> Any:
    """A user's YAML file (`what` names it in errors), parsed by StrictLoader; UserError in one line
    when it cannot be read, is not UTF-8 or is not valid YAML.

    A file is parsed once per process while its inode, size and change times stay the same (a sweep
    resolves the same few layers for every run); callers get their own copy to change."""
    path = Path(path)
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size)
    except OSError:
        key = None  # read_text reports it
    if key not in _PARSED:
        try:
            data = parse_yaml(read_text(path, what))
        except yaml.YAMLError as e:
            raise UserError(yaml_error_line(path, e)) from None
        if key is None:
            return data
        _PARSED[key] = data
    return copy.deepcopy(_PARSED[key])


_PARSED: dict[tuple[str, int, int, int, int], Any] = {}


def read_text(path: str | Path, what: str) -> str:
    """A user's file as UTF-8 text; UserError naming the path when it cannot be read or is not UTF-8."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot read {what} {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start} is 0x{e.object[e.start]:02x}); "
                        f"save the {what} as UTF-8") from None


def yaml_error_line(path: str | Path, e: yaml.YAMLError) -> str:
    """'PATH line N: invalid YAML (problem)' for any error StrictLoader or PyYAML raise."""
    mark = getattr(e, "problem_mark", None)
    where = f" line {mark.line + 1}" if mark else ""
    return f"{path}{where}: invalid YAML ({getattr(e, 'problem', None) or e})"
