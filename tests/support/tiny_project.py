"""A miniature pipeline workspace for the learning stages' tests: data/ingested,
data/generated and data/pairs as the pipeline lays them out, with labels worth learning."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from artsim.core.images import read_rgb_array
from artsim.describe.registry import describe_array
from artsim.learn.pair_images import resolve_pairs
from artsim.params import DescribeParams, ScoreWeights
from artsim.score.scorer import FILE_NAME as DESCRIPTOR_SCORE_FILE
from artsim.score.scorer import DescriptorScorer
from artsim.score.similarity import TextureStats
from tests.support.helpers import random_painting

# Two learnable styles told apart by colour, one style too rare to be a class of its own.
STYLE_TINTS = {"Warm": (200, 60, 40), "Cool": (40, 80, 200), "Rare": (60, 180, 60)}
ORIGINALS = [  # (style, split)
    *[("Warm", "train")] * 4, *[("Cool", "train")] * 4, ("Rare", "train"),
    ("Warm", "val"), ("Cool", "val"), ("Warm", "test"), ("Cool", "test"),
]


def _painting(tint: tuple[int, int, int], seed: int, size: tuple[int, int] = (48, 40)) -> Image.Image:
    """A random colour field of its own (so that pairs can be told apart) tinted by its style."""
    return Image.blend(random_painting(seed, size), Image.new("RGB", size, tint), 0.75)


def build_tiny_project(root: Path) -> dict[str, Path]:
    """data/ingested, data/generated and data/pairs as the pipeline lays them out, in miniature.

    Each original has one variant (the original blended toward another painting); a
    positive pair (original, own variant) scores high, a negative one scores low.
    """
    ingested, generated, pairs_dir = root / "data/ingested", root / "data/generated", root / "data/pairs"
    for folder in (ingested / "images", generated / "images", pairs_dir):
        folder.mkdir(parents=True, exist_ok=True)
    originals, variants, pairs = [], [], []
    for i, (style, split) in enumerate(ORIGINALS):
        image = _painting(STYLE_TINTS[style], seed=i)
        image.save(ingested / f"images/o{i}.jpg")
        originals.append({
            "id": f"o{i}", "hash": f"h{i}", "path": f"images/o{i}.jpg", "source_path": f"{style}/o{i}.jpg",
            "artist": "a", "title": f"t{i}", "year": "1900", "style": style, "genre": "portrait",
            "split": split, "width": image.width, "height": image.height,
        })
    for i in range(len(ORIGINALS)):
        donor = (i + 5) % len(ORIGINALS)
        variant = Image.blend(
            Image.open(ingested / f"images/o{i}.jpg"), Image.open(ingested / f"images/o{donor}.jpg"), 0.3
        )
        variant.save(generated / f"images/g{i}.jpg")
        variants.append({
            "id": f"g{i}", "original_id": f"o{i}", "path": f"images/g{i}.jpg", "strength": 0.3,
            "style_source_id": f"o{donor}", "backend": "test", "model": "blend", "seed": 0,
            "width": variant.width, "height": variant.height,
        })
    for i, (_, split) in enumerate(ORIGINALS):
        for other, positive in ((i, True), ((i + 3) % len(ORIGINALS), False)):
            score = 0.75 + 0.02 * (i % 3) if positive else 0.25 + 0.02 * (i % 4)
            pairs.append({
                "pair_id": f"p{i}-{other}", "original_id": f"o{i}", "generated_id": f"g{other}",
                "positive": positive, "strength": 0.3, "split": split,
                "color": score, "texture": score, "edges": score, "score": score,
            })
    pd.DataFrame(originals).to_parquet(ingested / "manifest.parquet")
    pd.DataFrame(variants).to_parquet(generated / "manifest.parquet")
    pd.DataFrame(pairs).to_parquet(pairs_dir / "pairs.parquet")
    write_descriptor_score(ingested, pd.DataFrame(originals), pairs_dir / DESCRIPTOR_SCORE_FILE)
    return {"ingested": ingested, "generated": generated, "pairs": pairs_dir / "pairs.parquet"}


def write_descriptor_score(ingested: Path, originals: pd.DataFrame, path: Path, size: int = 32) -> None:
    """What the score stage ships with the pairs (and siamese with the model): describe params,
    weights and the train originals' texture statistics."""
    describe = DescribeParams(size=size)
    train = originals[originals["split"] == "train"]
    textures = [describe_array(read_rgb_array(ingested / rel, size), describe).texture for rel in train["path"]]
    DescriptorScorer(describe, ScoreWeights(), TextureStats.fit(np.stack(textures))).save(path)


def resolved_pairs(paths: dict[str, Path]) -> pd.DataFrame:
    return resolve_pairs(
        pd.read_parquet(paths["pairs"]),
        pd.read_parquet(paths["ingested"] / "manifest.parquet"),
        pd.read_parquet(paths["generated"] / "manifest.parquet"),
        paths["ingested"],
        paths["generated"],
    )
