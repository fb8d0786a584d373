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


def _fingerprint(root: Path, runtime: str = "cpu fp32") -> str:
    inputs = StageInputs.of("train", root)
    return EpochCheckpoint.for_stage("train", inputs.deps, inputs.params, runtime, inputs.recorded,
                                     root=root / "cache").fingerprint


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
    assert _fingerprint(root, "cuda fp16") != _fingerprint(root)  # another device holds other states


def _lock(root: Path, md5: str) -> None:
    (root / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {
        "make": {"cmd": "make", "outs": [{"path": "inputs/w.bin", "hash": "md5", "md5": md5, "size": 7}]},
        "train": {"cmd": "train", "outs": [{"path": "code", "md5": "ignored.dir"}]},
    }}))


def test_another_stages_output_counts_by_the_hash_dvc_lock_records(tmp_path: Path) -> None:
    # A copied workspace (dvc exp run --temp, a queued experiment) or a `dvc pull` on a fresh machine gives
    # the same data new modification times: the recorded hash keeps the run's checkpoint found.
    root = _project(tmp_path)
    _lock(root, "a" * 32)
    inputs = StageInputs.of("train", root)
    assert inputs.recorded == {root / "inputs" / "w.bin": "a" * 32}  # its own outputs are no input
    first = _fingerprint(root)
    (root / "inputs" / "w.bin").write_bytes(b"weights, rewritten")
    assert _fingerprint(root) == first
    _lock(root, "b" * 32)
    assert _fingerprint(root) != first


def test_the_training_stages_inputs_name_their_outside_weights_file() -> None:
    for stage, key in (("finetune", "weights_file"), ("siamese", "trunk_weights_file")):
        inputs = StageInputs.of(stage, REPO_ROOT)
        params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
        assert REPO_ROOT / params[stage][key] in inputs.deps
        assert inputs.params["seed"] == params["seed"]
        assert REPO_ROOT / "artsim" / "learn" in inputs.deps


def test_outside_a_dvc_project_nothing_keys_a_checkpoint(tmp_path: Path) -> None:
    assert StageInputs.of("siamese", tmp_path) is None
