"""Stage params: every block of params.yaml checked before any other stage runs, one file per block
that changes only with the block's values that decide results, left as it was by a failed check.
(tests/test_failed_experiments.py runs it through `dvc exp run`.)"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import stages.params as params_stage
from artsim.core import layout
from artsim.params import Params, run_only_keys
from stages.common import edit_params
from tests.support.helpers import REPO_ROOT

# One bad value per params block (and the top-level seed): the line each failure must print.
BAD_VALUES = {
    "seed": (-1, "seed: Input should be greater than or equal to 0 (got -1)"),
    "ingest.format": ("nope", "ingest.format: Input should be 'auto', 'folder', 'artgan' or 'hf_parquet' (got 'nope')"),
    "generate.backend": ("nope", "generate.backend: Input should be 'style_transfer', 'sdxl' or 'import' (got 'nope')"),
    "describe.size": (0, "describe.size: Input should be greater than or equal to 32 (got 0)"),
    "score.weights": ("bogus", "score.weights: Value error, must be 'fit' or a mapping of descriptor to weight"),
    "finetune.label": ("nope", "finetune.label: Input should be 'style' or 'genre' (got 'nope')"),
    "siamese.epochs": (-1, "siamese.epochs: Input should be greater than or equal to 1 (got -1)"),
    "evaluate.batch_size": (0, "evaluate.batch_size: Input should be greater than or equal to 1 (got 0)"),
    "index.batch_size": (0, "index.batch_size: Input should be greater than or equal to 1 (got 0)"),
}
BLOCKS = [name for name in Params.model_fields if name != "seed"]


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The repository's params.yaml (and the sample it names) in a folder where stage params has run."""
    shutil.copyfile(REPO_ROOT / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sample").symlink_to(REPO_ROOT / "data" / "sample")
    monkeypatch.chdir(tmp_path)
    params_stage.main()
    return tmp_path


def _written(root: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted((root / layout.VALIDATED_PARAMS).iterdir())}


def test_each_block_gets_its_file_without_run_only_keys(workspace):
    written = _written(workspace)
    assert sorted(written) == sorted(f"{block}.json" for block in BLOCKS)
    run_only = run_only_keys()
    for block in BLOCKS:
        keys = {f"{block}.{key}" for key in json.loads(written[f"{block}.json"])}
        assert not keys & run_only
        assert bool(keys) == (block != "index")  # its own keys are all run-only
    assert json.loads(written["siamese.json"])["epochs"] == 8  # the committed value


@pytest.mark.parametrize("key", sorted(BAD_VALUES))
def test_a_bad_value_in_any_block_fails_naming_it_and_leaves_every_file(key, workspace, capsys):
    before = _written(workspace)
    value, line = BAD_VALUES[key]
    edit_params(workspace / "params.yaml", {key: value})
    with pytest.raises(SystemExit) as failure:
        params_stage.main()
    assert line in str(failure.value)
    assert _written(workspace) == before


def test_generates_own_checks_run_here_too(workspace):
    # Beyond the schema: the import backend needs its folder (generate's check_params).
    before = _written(workspace)
    edit_params(workspace / "params.yaml", {"generate.backend": "import"})
    with pytest.raises(SystemExit, match="generate.import_dir: backend import needs an existing folder"):
        params_stage.main()
    assert _written(workspace) == before


def test_run_only_keys_change_no_file(workspace):
    before = _written(workspace)
    edit_params(workspace / "params.yaml", {"describe.workers": 3, "generate.device": "cpu", "siamese.processes": 2,
                                            "evaluate.batch_size": 7, "index.batch_size": 64})
    params_stage.main()
    assert _written(workspace) == before


@pytest.mark.parametrize(("key", "value", "block"), [
    ("siamese.epochs", 2, "siamese"), ("score.weights.color", 0.5, "score"), ("generate.strengths", [0.5], "generate")])
def test_a_result_key_changes_only_its_blocks_file(key, value, block, workspace):
    before = _written(workspace)
    edit_params(workspace / "params.yaml", {key: value})
    params_stage.main()
    after = _written(workspace)
    assert {name for name in before if after[name] != before[name]} == {f"{block}.json"}
