"""Small builders shared by the tests."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from artsim.describe.texture import HARALICK_FEATURES
from artsim.learn.models import NORMALISATION, SiameseRegressor, save_weights
from artsim.params import DescribeParams, ScoreWeights
from artsim.score.scorer import DescriptorScorer
from artsim.score.similarity import TextureStats

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DIR = REPO_ROOT / "data" / "sample"


def stages_in(log: str) -> set[str]:
    """The stages a DVC run's output says it ran ("Running stage 'X'")."""
    return set(re.findall(r"Running stage '([\w-]+)'", log))


def stages_run(result: subprocess.CompletedProcess) -> set[str]:
    """The stages a `dvc repro` or `dvc exp run` ran."""
    return stages_in(result.stdout + result.stderr)


def random_painting(seed: int, size: tuple[int, int] = (120, 90)) -> Image.Image:
    """A smooth random colour field with some structure, so descriptors have something to see."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)


def copy_worktree(target: Path) -> None:
    """Copy what a fresh clone would hold (files git tracks or would track) to `target`: no DVC cache, no outputs."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout
    for name in filter(None, listed.split("\0")):
        source = REPO_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def write_untrained_model(folder: Path, image_size: int = 32, head_hidden: int = 8, seed: int = 0) -> Path:
    """What the siamese stage ships, from an untrained model: weights, card, descriptor score.

    The head is not at its constant baseline, so rankings come from the head; the same
    `seed` gives the same weights (and the same rankings) on every run.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = SiameseRegressor(head_hidden=head_hidden).eval()
        # Off the constant baseline in both parts of the head: the distance calibrated on random images (unit
        # embeddings sit close: uncalibrated, every pair would score 1), and a pair-dependent floor.
        noise = torch.randn(8, 3, image_size, image_size)
        with torch.no_grad():
            model.head.calibrate(model.embed(noise[:4]), model.embed(noise[4:]), 0.5)
        model.head.floor_output.weight.data.normal_(0, 0.01)
    save_weights(model.eval(), folder / "model.safetensors")
    card = {"image_size": image_size, "head_hidden": head_hidden, "normalisation": NORMALISATION}
    (folder / "card.json").write_text(json.dumps(card))
    stats = TextureStats(mean=np.zeros(HARALICK_FEATURES), std=np.full(HARALICK_FEATURES, 2.0))
    DescriptorScorer(DescribeParams(size=64), ScoreWeights(), stats).save(folder / "descriptor_score.json")
    return folder
