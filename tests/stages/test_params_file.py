"""params.yaml keeps its form under `dvc exp run -S`: it is written as DVC's own writer writes it,
so that -S of one key changes only that key's lines (comments kept), and the project's own edits
(stages.common.edit_params) write exactly what DVC writes.

DVC's writer is called as `dvc exp run -S` calls it (dvc.utils.hydra.apply_overrides on a copy), for
every key of params.yaml: scalars (numbers, strings, null, booleans) and lists.
"""
from __future__ import annotations

import difflib
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from dvc.utils.hydra import apply_overrides
from ruamel.yaml import YAML

from stages.common import edit_params
from tests.support.helpers import REPO_ROOT

PARAMS_FILE = REPO_ROOT / "params.yaml"
PARAMS = yaml.safe_load(PARAMS_FILE.read_text(encoding="utf-8"))


def _leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value; a list is one value, as -S sets it."""
    found: dict[str, Any] = {}
    for name, value in tree.items():
        if isinstance(value, dict):
            found |= _leaves(value, f"{prefix}{name}.")
        else:
            found[prefix + name] = value
    return found


LEAVES = _leaves(PARAMS)


def _other(value: Any) -> Any:
    """Another value of the same kind (null becomes a number)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "-x"
    if isinstance(value, list):
        return [_other(value[0]), *value[1:-1]]  # one item changed, the last one dropped
    return 7


def _override(key: str, value: Any) -> str:
    """`key=value` in the override grammar of `dvc exp run -S` (strings quoted: '{title}' is no dict)."""
    def literal(item: Any) -> str:
        if isinstance(item, str):
            assert "'" not in item and "\\" not in item
            return f"'{item}'"
        if isinstance(item, list):
            return "[" + ",".join(map(literal, item)) + "]"
        return "null" if item is None else str(item).lower() if isinstance(item, bool) else repr(item)
    return f"{key}={literal(value)}"


def _dvc_sets(tmp_path: Path, values: dict[str, Any]) -> Path:
    copy = tmp_path / "params.yaml"
    shutil.copyfile(PARAMS_FILE, copy)
    apply_overrides(copy, [_override(key, value) for key, value in values.items()])
    return copy


def _by_block(keys: list[str]) -> dict[str, list[str]]:
    """Keys by their top-level block (seed is a block of one): one DVC call sets a block's keys."""
    blocks: dict[str, list[str]] = {}
    for key in sorted(keys):
        blocks.setdefault(key.split(".")[0], []).append(key)
    return blocks


SCALARS = _by_block([key for key, value in LEAVES.items() if not isinstance(value, list)])
LISTS = _by_block([key for key, value in LEAVES.items() if isinstance(value, list)])
BLOCKS = _by_block(list(LEAVES))


def _key_line(key: str) -> int:
    """The 0-based line of `key` in params.yaml."""
    *parents, leaf = key.split(".")
    node = YAML().load(PARAMS_FILE.read_text(encoding="utf-8"))
    for part in parents:
        node = node[part]
    return node.lc.key(leaf)[0]


def _changes(before: list[str], after: list[str]) -> list[tuple[int, list[str], list[str]]]:
    """(first line in `before`, lines removed, lines added) of each change."""
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    return [(i1, before[i1:i2], after[j1:j2]) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"]


def test_params_yaml_is_already_in_the_form_dvc_writes(tmp_path):
    # Setting a key to the value it has rewrites the whole file in DVC's form: it must not change a byte.
    rewritten = _dvc_sets(tmp_path, {"seed": PARAMS["seed"]})
    assert rewritten.read_text(encoding="utf-8") == PARAMS_FILE.read_text(encoding="utf-8")


def test_the_keys_cover_scalars_and_lists():
    kinds = {type(value) for value in LEAVES.values()}
    assert {int, float, str, bool, list, type(None)} <= kinds
    assert sum(map(len, SCALARS.values())) + sum(map(len, LISTS.values())) == len(LEAVES)


@pytest.mark.parametrize("block", sorted(SCALARS))
def test_dvc_setting_a_scalar_changes_only_its_line(block, tmp_path):
    # Every scalar of the block set at once: each changes its own line, and no other line changes.
    new = {key: _other(LEAVES[key]) for key in SCALARS[block]}
    before = PARAMS_FILE.read_text(encoding="utf-8").splitlines()
    after = _dvc_sets(tmp_path, new).read_text(encoding="utf-8").splitlines()
    lines = {_key_line(key): key for key in new}
    assert len(after) == len(before), _changes(before, after)
    changed = {line for line, (old, fresh) in enumerate(zip(before, after)) if old != fresh}
    assert changed == set(lines), _changes(before, after)
    for line, key in lines.items():
        old, fresh = before[line], after[line]
        assert fresh.split(":")[0] == old.split(":")[0], key
        if "#" in old:  # its comment stays
            assert "#" in fresh and fresh[fresh.index("#"):] == old[old.index("#"):], key
    parsed = _leaves(yaml.safe_load("\n".join(after)))
    assert {key: parsed[key] for key in new} == new


@pytest.mark.parametrize("block", sorted(LISTS))
def test_dvc_setting_a_list_changes_only_its_items(block, tmp_path):
    new = {key: _other(LEAVES[key]) for key in LISTS[block]}
    before = PARAMS_FILE.read_text(encoding="utf-8").splitlines()
    after = _dvc_sets(tmp_path, new).read_text(encoding="utf-8").splitlines()
    items = {line for key in new for line in range(_key_line(key) + 1, _key_line(key) + 1 + len(LEAVES[key]))}
    for start, removed, added in _changes(before, after):
        assert start in items, f"{block}: line {start + 1} changed, outside the items of {sorted(new)}"
        assert all(text.lstrip().startswith("- ") for text in removed + added)
    parsed = _leaves(yaml.safe_load("\n".join(after)))
    assert {key: parsed[key] for key in new} == new


@pytest.mark.parametrize("block", sorted(BLOCKS))
def test_the_projects_own_edit_writes_what_dvc_writes(block, tmp_path):
    new = {key: _other(LEAVES[key]) for key in BLOCKS[block]}
    ours = tmp_path / "ours" / "params.yaml"
    ours.parent.mkdir()
    shutil.copyfile(PARAMS_FILE, ours)
    edit_params(ours, new)
    assert ours.read_text(encoding="utf-8") == _dvc_sets(tmp_path, new).read_text(encoding="utf-8")


def test_the_projects_own_edit_makes_missing_blocks(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("seed: 1  # kept\n", encoding="utf-8")
    edit_params(path, {"finetune.epochs": 2, "seed": 3})
    assert path.read_text(encoding="utf-8") == "seed: 3  # kept\nfinetune:\n  epochs: 2\n"
