"""Both training stages under torchrun (DDP, gloo, 2 CPU ranks) against one process.

Every run has a deadline and a short collective timeout: ranks that stop meeting (one
takes a step the others do not) fail the test instead of blocking it.
"""
from __future__ import annotations

import json
import math
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml
from safetensors.torch import load_file

from tests.support.rank_processes import command_line, kill_tree, run_to_deadline, stage_env, still_running
from tests.support.tiny_project import ORIGINALS, build_tiny_project

PARAMS = {
    "seed": 0,
    "ingest": {"source": "data/sample"},
    "finetune": {"image_size": 32, "epochs": 2, "batch_size": 8, "lr": 1e-3},
    "siamese": {"image_size": 32, "epochs": 3, "batch_size": 6, "lr": 1e-3, "head_hidden": 16,
                "train_layers": ["layer4"], "feature_cache": ".artsim/features"},
}


def run_stage(project: Path, stage: str, ranks: int = 1) -> subprocess.CompletedProcess:
    """`python -m stages.<stage>`, under torchrun when `ranks` > 1; must succeed."""
    launcher = (
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}"]
        if ranks > 1
        else [sys.executable]
    )
    result = run_to_deadline([*launcher, "-m", f"stages.{stage}"], project)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def project(root: Path, **overrides: dict) -> Path:
    build_tiny_project(root)
    params = {**PARAMS, **{block: {**PARAMS[block], **values} for block, values in overrides.items()}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def add_train_pairs(root: Path, count: int) -> None:
    """`count` more train pairs: train originals with the variant of another painting."""
    path = root / "data/pairs/pairs.parquet"
    pairs = pd.read_parquet(path)
    train = [i for i, (_, split) in enumerate(ORIGINALS) if split == "train"]
    extra = []
    for n in range(count):
        original, other = train[n % len(train)], train[(n + 1) % len(train)]
        row = pairs[pairs["original_id"] == f"o{original}"].iloc[0].to_dict()
        extra.append(
            {**row, "pair_id": f"extra{n}", "generated_id": f"g{other}", "positive": False, "score": 0.3 + 0.01 * n}
        )
    pd.concat([pairs, pd.DataFrame(extra)], ignore_index=True).to_parquet(path)


def card(root: Path, stage: str) -> dict:
    return json.loads((root / "models" / stage / "card.json").read_text())


@pytest.fixture(scope="module")
def alone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = project(tmp_path_factory.mktemp("alone"))
    run_stage(root, "finetune", ranks=1)
    run_stage(root, "siamese", ranks=1)
    return root


def siamese_project(root: Path, trunk_from: Path, extra_pairs: int, **siamese: object) -> Path:
    built = project(root, siamese=siamese)
    add_train_pairs(built, extra_pairs)
    # The same starting trunk, so that only the siamese stage's own distribution is compared.
    shutil.copytree(trunk_from / "models/finetune", built / "models/finetune")
    return built


# 18 train pairs in batches of 6 split evenly over 2 ranks; 19 leave a last batch of one
# pair, so one rank has an empty share of it (it used to skip that step while the other
# waited for it in the step's collectives); 20 leave a last batch of one pair per rank.
# With the ranking term (the default siamese.rank_weight), with MSE alone (rank_weight 0), and
# with more ranking candidates drawn per batch (so that the last batch's empty share still ranks).
@pytest.mark.parametrize(("n_train_pairs", "chosen"), [(18, {}), (19, {}), (20, {}), (19, {"rank_weight": 0.0}),
                                                       (19, {"rank_candidates": 2})])
def test_siamese_under_ddp_matches_one_process(alone: Path, tmp_path: Path, n_train_pairs: int, chosen: dict) -> None:
    extra = n_train_pairs - 18
    one_root = alone if extra == 0 and not chosen else siamese_project(tmp_path / "one", alone, extra, **chosen)
    if one_root is not alone:
        run_stage(one_root, "siamese")
    # siamese.processes: 2 makes the stage relaunch itself under torchrun.
    ddp = siamese_project(tmp_path / "ddp", alone, extra, processes=2, **chosen)
    run_stage(ddp, "siamese")
    one, two = card(one_root, "siamese")["metrics"], card(ddp, "siamese")["metrics"]
    assert two["n_train_pairs"] == one["n_train_pairs"] == n_train_pairs
    # Same global batches, same loss normalisation: only the order of float sums differs, and how
    # far that carries depends on the kernels. Measured, DDP against one process after 3 epochs:
    # on the pinned kernels (every x86-64 machine with AVX2) val_mse 1.3e-4 relative with 18 pairs;
    # natively on an AVX-512 Xeon 4.1e-3 relative and weights 4.8e-4 apart. The bounds hold those
    # with a margin of 2 or more; a DDP mistake lands far outside (the ranking term ranked against
    # each rank's own share of the originals landed 40% apart).
    for name in ("train_mse", "val_mse"):
        assert two[name] == pytest.approx(one[name], rel=1e-2), name
    weights_one = load_file(one_root / "models/siamese/model.safetensors")
    weights_two = load_file(ddp / "models/siamese/model.safetensors")
    assert max(float((weights_one[k] - weights_two[k]).abs().max()) for k in weights_one) < 1e-3
    # Only rank 0 writes the dvclive metrics.
    assert (ddp / "metrics/siamese.json").is_file() and (ddp / "metrics/siamese/plots/metrics/val_mse.tsv").is_file()


def test_finetune_under_ddp_matches_one_process(alone: Path, tmp_path: Path) -> None:
    ddp = project(tmp_path)
    run_stage(ddp, "finetune", ranks=2)
    one, two = card(alone, "finetune")["metrics"], card(ddp, "finetune")["metrics"]
    assert two["n_train_images"] == one["n_train_images"]
    # The same images in every global batch; but on CPUs BatchNorm normalises each rank's
    # half of a batch on its own (SyncBatchNorm is GPU-only), which over the two steps here
    # moves an untrained ResNet's loss more than the ranks' arithmetic could (measured:
    # 1.66 alone vs 1.56 on 2 ranks, 1.43 vs 1.16 after a change of classes): only that
    # both trained is compared.
    assert math.isfinite(two["train_loss"]) and math.isfinite(one["train_loss"])
    confusion = ddp / "metrics/finetune/plots/sklearn/confusion_matrix.json"
    rows = json.loads(confusion.read_text())
    assert len(rows) == two["n_test_images"] and {row["actual"] for row in rows} == {"Warm", "Cool"}


def test_finetune_under_ddp_trains_when_a_rank_holds_one_image_of_a_batch(tmp_path: Path) -> None:
    # Global batches of 3 images over 2 ranks: every step, one rank holds a single image,
    # which BatchNorm cannot normalise on its own (the 32-pixel images end in 1x1 maps).
    ddp = project(tmp_path, finetune={"batch_size": 3, "processes": 2})
    run_stage(ddp, "finetune")
    assert math.isfinite(card(ddp, "finetune")["metrics"]["train_loss"]), "no step was taken"


def test_finetune_under_ddp_survives_an_image_breaking_on_one_rank(tmp_path: Path) -> None:
    # o0.jpg decodes at screening, then fails every time training reads it: the rank
    # holding it in a step has one image of its two, or none.
    ddp = project(tmp_path, finetune={"batch_size": 4})
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
               "-m", "tests.support.stage_with_broken_image", "finetune", "o0.jpg"]
    result = run_to_deadline(command, ddp)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "o0.jpg" in result.stderr and "broken after screening" in result.stderr
    metrics = card(ddp, "finetune")["metrics"]
    assert metrics["n_train_images"] == 9 and math.isfinite(metrics["train_loss"])


# --- stopping a multi-process stage -----------------------------------------

def test_sigterm_to_a_multi_process_stage_stops_its_ranks(tmp_path: Path) -> None:
    root = project(tmp_path, finetune={"processes": 2, "epochs": 1000, "loader_workers": 1})
    with open(tmp_path / "stage.log", "w") as log:
        stage = subprocess.Popen([sys.executable, "-m", "stages.finetune"], cwd=root, env=stage_env(),
                                 stdout=subprocess.DEVNULL, stderr=log)
    family: list[psutil.Process] = []
    try:
        family = wait_until_ranks_train(stage)
        stage.send_signal(signal.SIGTERM)
        status = stage.wait(timeout=60)
        survivors = still_running(family, within_s=60)
        assert not survivors, (
            f"left running after SIGTERM: {[(p.pid, command_line(p)) for p in survivors]}\n"
            f"{(tmp_path / 'stage.log').read_text()[-3000:]}"
        )
        assert status == 128 + signal.SIGTERM
    finally:
        kill_tree(stage.pid)
        for process in still_running(family, within_s=0):
            process.kill()


def wait_until_ranks_train(stage: subprocess.Popen, within_s: float = 240) -> list[psutil.Process]:
    """The stage's processes (torchrun, its ranks, their loader workers) once each rank has
    started its training loader, i.e. the ranks are training."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        assert stage.poll() is None, "the stage ended before its ranks trained"
        try:
            ranks = [rank for torchrun in psutil.Process(stage.pid).children() for rank in torchrun.children()]
            if len(ranks) == 2 and all(rank.children() for rank in ranks):
                return psutil.Process(stage.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            pass  # a process came or went while looking
        time.sleep(0.5)
    pytest.fail("the ranks did not start training in time")
