"""What a training stage's checkpoint is keyed by: the deps and params values DVC watches of it."""
from __future__ import annotations

from pathlib import Path

import yaml

from artsim.learn.resume import EpochCheckpoint
from stages.common import StageInputs, edit_params
from tests.support.helpers import REPO_ROOT


def _project(root: Path) -> Path:
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"train": {
        "cmd": "python -m stages.train",
        "deps": ["code", "${train.weights_file}"],
        "params": ["seed", "train.epochs"],
    }}}))
    (root / "params.yaml").write_text("seed: 1\ntrain:\n  epochs: 2\n  weights_file: inputs/w.bin\n  workers: 0\n")
    (root / "code").mkdir()
    (root / "code" / "train.py").write_text("x = 1\n")
    (root / "inputs").mkdir()
    (root / "inputs" / "w.bin").write_bytes(b"weights")
    return root


def test_deps_are_interpolated_from_params_and_params_are_the_listed_keys(tmp_path: Path) -> None:
    inputs = StageInputs.of("train", _project(tmp_path))
    assert inputs.deps == [tmp_path / "code", tmp_path / "inputs" / "w.bin"]
    assert inputs.params == {"seed": 1, "train.epochs": 2}


def _fingerprint(root: Path) -> str:
    inputs = StageInputs.of("train", root)
    return EpochCheckpoint.for_stage("train", inputs.deps, inputs.params, root=root / "cache").fingerprint


def test_the_checkpoint_key_moves_with_what_decides_the_output_and_only_with_it(tmp_path: Path) -> None:
    root = _project(tmp_path)
    first = _fingerprint(root)
    edit_params(root / "params.yaml", {"train.workers": 4})  # a key the stage does not list: how to run
    assert _fingerprint(root) == first
    edit_params(root / "params.yaml", {"seed": 2})
    second = _fingerprint(root)
    assert second != first
    (root / "inputs" / "w.bin").write_bytes(b"other weights")
    third = _fingerprint(root)
    assert third not in {first, second}
    (root / "code" / "train.py").write_text("x = 2\n")
    assert _fingerprint(root) not in {first, second, third}


def test_the_training_stages_inputs_name_their_outside_weights_file() -> None:
    for stage, key in (("finetune", "weights_file"), ("siamese", "trunk_weights_file")):
        inputs = StageInputs.of(stage, REPO_ROOT)
        params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
        assert REPO_ROOT / params[stage][key] in inputs.deps
        assert inputs.params["seed"] == params["seed"]
        assert REPO_ROOT / "artsim" / "learn" in inputs.deps


def test_outside_a_dvc_project_nothing_keys_a_checkpoint(tmp_path: Path) -> None:
    assert StageInputs.of("siamese", tmp_path) is None
