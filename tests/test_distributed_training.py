"""Both training stages under torchrun (DDP, gloo, 2 CPU ranks) against one process."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from tests.helpers import REPO_ROOT
from tests.tiny_project import build_tiny_project

PARAMS = {
    "seed": 0,
    "ingest": {"source": "data/sample"},
    "finetune": {"image_size": 32, "epochs": 2, "batch_size": 8, "lr": 1e-3},
    "siamese": {"image_size": 32, "epochs": 3, "batch_size": 6, "lr": 1e-3, "head_hidden": 16,
                "train_layers": ["layer4"], "feature_cache": ".artsim/features"},
}


def run_stage(project: Path, stage: str, ranks: int = 1) -> None:
    """`python -m stages.<stage>`, under torchrun when `ranks` > 1."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}"] if ranks > 1 else [sys.executable]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*launcher, "-m", f"stages.{stage}"], cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]


def project(root: Path, **overrides: dict) -> Path:
    build_tiny_project(root)
    params = {**PARAMS, **{block: {**PARAMS[block], **values} for block, values in overrides.items()}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def card(root: Path, stage: str) -> dict:
    return json.loads((root / "models" / stage / "card.json").read_text())


@pytest.fixture(scope="module")
def alone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = project(tmp_path_factory.mktemp("alone"))
    run_stage(root, "finetune", ranks=1)
    run_stage(root, "siamese", ranks=1)
    return root


def test_siamese_under_ddp_matches_one_process(alone: Path, tmp_path: Path) -> None:
    # siamese.processes: 2 makes the stage relaunch itself under torchrun.
    ddp = project(tmp_path, siamese={"processes": 2})
    # The same starting trunk, so that only the siamese stage's own distribution is compared.
    shutil.copytree(alone / "models/finetune", ddp / "models/finetune")
    run_stage(ddp, "siamese")
    one, two = card(alone, "siamese")["metrics"], card(ddp, "siamese")["metrics"]
    assert two["n_train_pairs"] == one["n_train_pairs"] == 18
    # Same global batches, same loss normalisation: only the order of float sums differs
    # (measured here: 5e-8 relative after 3 epochs).
    for name in ("train_mse", "val_mse"):
        assert two[name] == pytest.approx(one[name], rel=1e-5), name
    weights_one, weights_two = load_file(alone / "models/siamese/model.safetensors"), load_file(ddp / "models/siamese/model.safetensors")
    assert max(float((weights_one[k] - weights_two[k]).abs().max()) for k in weights_one) < 1e-4
    # Only rank 0 writes the dvclive metrics.
    assert (ddp / "metrics/siamese/metrics.json").is_file()


def test_finetune_under_ddp_matches_one_process(alone: Path, tmp_path: Path) -> None:
    ddp = project(tmp_path)
    run_stage(ddp, "finetune", ranks=2)
    one, two = card(alone, "finetune")["metrics"], card(ddp, "finetune")["metrics"]
    assert two["n_train_images"] == one["n_train_images"]
    # The same images in every global batch; but on CPUs BatchNorm normalises each rank's
    # half of a batch on its own (SyncBatchNorm is GPU-only), so the figures differ a little
    # (measured here: final train loss 1.663 alone, 1.555 on 2 ranks).
    assert two["train_loss"] == pytest.approx(one["train_loss"], rel=0.1)
    confusion = ddp / "metrics/finetune/plots/sklearn/confusion_matrix.json"
    rows = json.loads(confusion.read_text())
    assert len(rows) == two["n_test_images"] and {row["actual"] for row in rows} == {"Warm", "Cool"}
