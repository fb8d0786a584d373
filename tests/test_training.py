"""Training loops on tiny synthetic data: classes, loss going down, determinism, bad images."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from artsim.config import FinetuneParams, SiameseParams
from artsim.models import PairImages, resolve_pairs, save_weights, siamese_from_classifier
from artsim.training import (
    OTHER,
    calibrate_feature_norm,
    class_indices,
    class_names,
    classification_metrics,
    finetune_classifier,
    train_siamese,
)
from tests.helpers import random_painting

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
    return {"ingested": ingested, "generated": generated, "pairs": pairs_dir / "pairs.parquet"}


def resolved_pairs(paths: dict[str, Path]) -> pd.DataFrame:
    return resolve_pairs(
        pd.read_parquet(paths["pairs"]),
        pd.read_parquet(paths["ingested"] / "manifest.parquet"),
        pd.read_parquet(paths["generated"] / "manifest.parquet"),
        paths["ingested"],
        paths["generated"],
    )


@pytest.fixture
def tiny(tmp_path: Path) -> dict[str, Path]:
    return build_tiny_project(tmp_path)


# One batch per epoch: from-scratch ResNet-50 losses on small batches are too noisy to compare.
FINETUNE = FinetuneParams(image_size=32, epochs=6, batch_size=9, lr=1e-3)
SIAMESE = SiameseParams(image_size=32, epochs=4, batch_size=6, lr=1e-3, head_hidden=16)


# --- classes ----------------------------------------------------------------

def test_rare_classes_are_merged_into_other() -> None:
    train = ["Ukiyo_e"] * 3 + ["Impressionism"] * 2 + ["Abstract_Art"]
    classes = class_names(train, min_class_size=2, eval_labels=["Baroque"])
    assert classes == ["Impressionism", "Ukiyo_e", OTHER]
    # Rare in train, or seen only in val/test: both land in OTHER.
    assert class_indices(["Abstract_Art", "Baroque", "Ukiyo_e"], classes) == [2, 2, 1]


def test_other_exists_only_when_some_label_needs_it() -> None:
    assert class_names(["b", "a", "b"], min_class_size=1) == ["a", "b"]
    assert class_names(["b", "a", "b"], min_class_size=1, eval_labels=["a", "b"]) == ["a", "b"]
    # A label only val/test know of still needs a class.
    assert class_names(["b", "a", "b"], min_class_size=1, eval_labels=["c"]) == ["a", "b", OTHER]


def test_classification_metrics() -> None:
    metrics = classification_metrics([0, 0, 1, 1], [0, 1, 1, 1])
    assert metrics["accuracy"] == pytest.approx(0.75)
    # F1 of class 0 = 2/3, of class 1 = 0.8.
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert classification_metrics([], []) == {"accuracy": None, "macro_f1": None}


# --- classifier -------------------------------------------------------------

def _finetune(paths: dict[str, Path], params: FinetuneParams = FINETUNE, seed: int = 0):
    manifest = pd.read_parquet(paths["ingested"] / "manifest.parquet")
    return finetune_classifier(manifest, paths["ingested"], params, seed)


def _losses(result, name: str) -> list[float]:
    return [epoch[name] for epoch in result.history]


def test_finetune_lowers_the_loss_and_is_deterministic(tiny: dict[str, Path]) -> None:
    first, second = _finetune(tiny), _finetune(tiny)
    # Same seed, so the same crops and batches, but (almost) no learning.
    control = _finetune(tiny, FINETUNE.model_copy(update={"lr": 1e-12}))
    trained, untrained = _losses(first, "train_loss"), _losses(control, "train_loss")
    assert np.mean(trained[-2:]) < 0.5 * trained[0]
    assert np.mean(trained[-2:]) < 0.5 * np.mean(untrained[-2:])
    assert first.history == second.history
    assert first.metrics == second.metrics
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(tensor, second.model.state_dict()[name]), name
    assert first.classes == ["Cool", "Warm", OTHER]
    assert first.metrics["n_train_images"] == 9
    assert first.metrics["skipped_images"] == 0
    assert 0.0 <= first.metrics["test_accuracy"] <= 1.0


def test_finetune_seed_matters(tiny: dict[str, Path]) -> None:
    params = FINETUNE.model_copy(update={"epochs": 1})
    assert _finetune(tiny, params, seed=0).history != _finetune(tiny, params, seed=1).history


def test_corrupt_training_image_is_skipped_and_reported(tiny: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    broken = tiny["ingested"] / "images/o0.jpg"
    broken.write_bytes(broken.read_bytes()[:200])  # truncated JPEG
    with caplog.at_level(logging.WARNING):
        result = _finetune(tiny, FINETUNE.model_copy(update={"epochs": 1}))
    assert result.metrics["skipped_images"] == 1
    assert result.metrics["n_train_images"] == 8
    assert str(broken) in caplog.text


def test_finetune_without_validation_keeps_the_last_epoch(tiny: dict[str, Path]) -> None:
    manifest = pd.read_parquet(tiny["ingested"] / "manifest.parquet")
    manifest = manifest[manifest["split"] != "val"]
    result = finetune_classifier(manifest, tiny["ingested"], FINETUNE.model_copy(update={"epochs": 2}), seed=0)
    assert result.metrics["best_epoch"] == 1
    assert result.metrics["val_accuracy"] is None
    assert all("val_accuracy" not in epoch for epoch in result.history)


# --- siamese ----------------------------------------------------------------

@pytest.fixture(scope="module")
def trunk_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A briefly fine-tuned classifier, as the pipeline hands it over (its BatchNorm has seen data)."""
    root = tmp_path_factory.mktemp("trunk")
    path = root / "finetune.safetensors"
    save_weights(_finetune(build_tiny_project(root), FINETUNE.model_copy(update={"epochs": 2})).model, path)
    return path


def test_siamese_lowers_the_loss_and_is_deterministic(tiny: dict[str, Path], trunk_weights: Path) -> None:
    pairs = resolved_pairs(tiny)
    first = train_siamese(pairs, trunk_weights, SIAMESE, seed=0)
    second = train_siamese(pairs, trunk_weights, SIAMESE, seed=0)
    losses = _losses(first, "train_mse")
    assert losses[-1] < 0.85 * losses[0]
    assert first.history == second.history
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(tensor, second.model.state_dict()[name]), name
    assert first.train_mean_score == pytest.approx(pairs.loc[pairs["split"] == "train", "score"].mean())
    assert first.metrics["n_train_pairs"] == 18
    assert first.metrics["skipped_pairs"] == 0


def test_siamese_skips_pairs_with_a_corrupt_image(tiny: dict[str, Path], trunk_weights: Path) -> None:
    (tiny["generated"] / "images/g0.jpg").write_bytes(b"not a jpeg")
    result = train_siamese(resolved_pairs(tiny), trunk_weights, SIAMESE.model_copy(update={"epochs": 1}), seed=0)
    # g0 is in the train pair (o0, g0) and in the val pair (o10, g0).
    assert result.metrics["skipped_pairs"] == 2
    assert result.metrics["n_train_pairs"] == 17


def test_head_features_are_standardised_on_the_training_pairs(tiny: dict[str, Path], trunk_weights: Path) -> None:
    pairs = resolved_pairs(tiny)
    train = PairImages(pairs[pairs["split"] == "train"], image_size=32)
    model = siamese_from_classifier(trunk_weights, head_hidden=4)
    calibrate_feature_norm(model, train, batch_size=5, device=torch.device("cpu"))
    original = torch.stack([train[i][1] for i in range(len(train))])
    generated = torch.stack([train[i][2] for i in range(len(train))])
    with torch.no_grad():
        features = model.pair_features(original, generated)
        standardised = model.feature_norm(features)
    # BatchNorm's eps shrinks features that hardly vary; the others come out at unit variance.
    varying = features.var(dim=0) > 100 * model.feature_norm.eps
    assert varying.sum() > 100
    assert standardised.mean(dim=0).abs().max() < 1e-3
    assert torch.allclose(standardised.std(dim=0)[varying], torch.ones(int(varying.sum())), atol=1e-2)
