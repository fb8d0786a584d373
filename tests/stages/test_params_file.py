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


def _dvc_sets(tmp_path: Path, key: str, value: Any) -> Path:
    copy = tmp_path / "params.yaml"
    shutil.copyfile(PARAMS_FILE, copy)
    apply_overrides(copy, [_override(key, value)])
    return copy


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
    rewritten = _dvc_sets(tmp_path, "seed", PARAMS["seed"])
    assert rewritten.read_text(encoding="utf-8") == PARAMS_FILE.read_text(encoding="utf-8")


def test_the_keys_cover_scalars_and_lists():
    kinds = {type(value) for value in LEAVES.values()}
    assert {int, float, str, bool, list, type(None)} <= kinds


@pytest.mark.parametrize("key", sorted(key for key, value in LEAVES.items() if not isinstance(value, list)))
def test_dvc_setting_a_scalar_changes_only_its_line(key, tmp_path):
    new = _other(LEAVES[key])
    before = PARAMS_FILE.read_text(encoding="utf-8").splitlines()
    after = _dvc_sets(tmp_path, key, new).read_text(encoding="utf-8").splitlines()
    changes = _changes(before, after)
    line = _key_line(key)
    assert [(start, len(removed), len(added)) for start, removed, added in changes] == [(line, 1, 1)], changes
    old, fresh = before[line], after[line]
    assert fresh.split(":")[0] == old.split(":")[0]
    if "#" in old:  # its comment stays
        assert "#" in fresh and fresh[fresh.index("#"):] == old[old.index("#"):]
    assert _leaves(yaml.safe_load("\n".join(after)))[key] == new


@pytest.mark.parametrize("key", sorted(key for key, value in LEAVES.items() if isinstance(value, list)))
def test_dvc_setting_a_list_changes_only_its_items(key, tmp_path):
    new = _other(LEAVES[key])
    before = PARAMS_FILE.read_text(encoding="utf-8").splitlines()
    after = _dvc_sets(tmp_path, key, new).read_text(encoding="utf-8").splitlines()
    line = _key_line(key)
    items = range(line + 1, line + 1 + len(LEAVES[key]))
    for start, removed, added in _changes(before, after):
        assert start in items, f"{key}: line {start + 1} changed, outside the key's items"
        assert all(text.lstrip().startswith("- ") for text in removed + added)
    assert _leaves(yaml.safe_load("\n".join(after)))[key] == new


@pytest.mark.parametrize("key", sorted(LEAVES))
def test_the_projects_own_edit_writes_what_dvc_writes(key, tmp_path):
    new = _other(LEAVES[key])
    ours = tmp_path / "ours" / "params.yaml"
    ours.parent.mkdir()
    shutil.copyfile(PARAMS_FILE, ours)
    edit_params(ours, {key: new})
    assert ours.read_text(encoding="utf-8") == _dvc_sets(tmp_path, key, new).read_text(encoding="utf-8")


def test_the_projects_own_edit_makes_missing_blocks(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("seed: 1  # kept\n", encoding="utf-8")
    edit_params(path, {"finetune.epochs": 2, "seed": 3})
    assert path.read_text(encoding="utf-8") == "seed: 3  # kept\nfinetune:\n  epochs: 2\n"
