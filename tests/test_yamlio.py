"""Every YAML a user gives: UTF-8 only, duplicate keys and alias bombs refused in one line (issue 25, cases 6, 8)."""
from __future__ import annotations

import pytest

from pad_bench.cli import main
from pad_bench.config import load_yaml, parse_set
from pad_bench.errors import UserError
from pad_bench.yamlio import MAX_EXPANDED_VALUES, parse_yaml


def alias_bomb(levels: int, width: int) -> str:
    """`levels` anchors, each a list of `width` aliases of the one before: width**levels values."""
    lines = [f"a0: &a0 [{', '.join(['x'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_a_spec_that_is_not_utf8_is_one_line(tmp_path, capsys):
    spec = tmp_path / "b.yaml"
    spec.write_bytes(b"\x00\xff")
    assert main(["sweep", str(spec), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err == f"pad-bench: error: {spec}: not UTF-8 text (byte 1 is 0xff); save the config file as UTF-8\n"


def test_duplicate_keys_are_refused_with_their_line(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("train:\n  epochs: 1\n  epochs: 2\n")
    with pytest.raises(UserError, match=rf"^{path} line 3: invalid YAML \(duplicate key 'epochs'; keep one\)$"):
        load_yaml(path)


def test_merge_keys_and_equal_keys_in_different_mappings_are_fine():
    assert parse_yaml("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  x: 3\nd: {x: 4}\n")["c"] == {"x": 3, "y": 2}


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path, capsys):
    """9 levels of 9 aliases stand for 9**9 (387 million) values; the file is a few hundred bytes."""
    method = tmp_path / "methods" / "bomb"
    method.mkdir(parents=True)
    (method / "bomb.yaml").write_text(alias_bomb(9, 9))
    with pytest.raises(UserError, match=rf"line 6: invalid YAML \(its aliases expand to more than "
                                        rf"{MAX_EXPANDED_VALUES} values"):
        load_yaml(method / "bomb.yaml")


def test_aliases_below_the_bound_load():
    """4 levels of 9: 9**4 = 6561 leaves plus their lists, below the bound."""
    data = parse_yaml(alias_bomb(4, 9))
    assert len(data["a4"]) == 9 and data["a4"][0][0][0][0] == data["a0"]


def test_a_recursive_alias_is_refused():
    with pytest.raises(Exception, match="an alias refers to a value that contains it"):
        parse_yaml("a: &a [1, *a]\n")


def test_set_values_use_the_same_loader():
    assert parse_set(["strategy.x={a: 1, a: 2}"]) == {"strategy.x": "{a: 1, a: 2}"}  # not a silent {a: 2}
