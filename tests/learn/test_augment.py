"""Training-time augmentation (issues 17 §3, 26 §4): altered copies of train variants keep their targets,
are deterministic given the seed, never reach the evaluation's settings, never touch val/test; chains of
alterations per image and epoch (altered views) likewise."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from artsim.core import alterations
from artsim.core.images import file_hash, load_rgb
from artsim.learn.augment import (
    LONGEST_CHAIN,
    TRAINING,
    AugmentedImage,
    TrainingAlteration,
    TrainingViews,
    draw_augmentation,
    draw_chain,
    with_augmented_copies,
)


@pytest.fixture()
def painting(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "variant.png"
    Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(path)
    return path


def _pairs(path: Path) -> pd.DataFrame:
    rows = []
    for split, n in (("train", 4), ("val", 2), ("test", 2)):
        for i in range(n):
            for positive in (True, False):
                rows.append({"original_id": f"o{split}{i}", "generated_id": f"g{split}{i}", "split": split,
                             "positive": positive, "score": 0.7 if positive else 0.3 + 0.01 * i,
                             "original_path": path, "generated_path": path.parent / f"g{split}{i}.png"})
    return pd.DataFrame(rows)


def test_copies_keep_each_pairs_target_and_only_train_pairs_are_copied(painting: Path) -> None:
    pairs = _pairs(painting)
    augmented = with_augmented_copies(pairs, copies=2, seed=3)
    plain, copies = augmented[augmented["augmented"] == 0], augmented[augmented["augmented"] > 0]
    pd.testing.assert_frame_equal(plain.drop(columns="augmented").reset_index(drop=True), pairs)
    assert len(copies) == 2 * (pairs["split"] == "train").sum()
    assert set(copies["split"]) == {"train"}
    # Never an altered val/test image: every copy's source is a train variant.
    train_variants = set(pairs.loc[pairs["split"] == "train", "generated_path"])
    assert {image.source for image in copies["generated_path"]} == train_variants
    for copy in (1, 2):
        mine = copies[copies["augmented"] == copy].reset_index(drop=True)
        train = pairs[pairs["split"] == "train"].reset_index(drop=True)
        assert mine["score"].tolist() == train["score"].tolist()
        assert mine["positive"].tolist() == train["positive"].tolist()
        assert mine["original_path"].tolist() == train["original_path"].tolist()
    # A variant's pairs share its copies: one cache entry per copy, not per pair.
    per_variant = copies.groupby(["generated_id", "augmented"])["generated_path"].nunique()
    assert (per_variant == 1).all()
    assert with_augmented_copies(pairs, copies=0, seed=3).drop(columns="augmented").equals(pairs)


def test_copies_are_deterministic_given_the_seed_and_differ_between_seeds(painting: Path) -> None:
    draws = [draw_augmentation(painting, f"g{i}", copy, seed=5) for i in range(20) for copy in (1, 2)]
    again = [draw_augmentation(painting, f"g{i}", copy, seed=5) for i in range(20) for copy in (1, 2)]
    other = [draw_augmentation(painting, f"g{i}", copy, seed=6) for i in range(20) for copy in (1, 2)]
    assert draws == again and draws != other
    assert len({d.kind for d in draws}) >= 4  # the family, not one kind
    # One variant's copies are of different kinds, so never the same image twice.
    every = [draw_augmentation(painting, "g0", copy, seed=5) for copy in range(1, len(TRAINING) + 1)]
    assert {d.kind for d in every} == set(TRAINING)
    assert draws[0].read_bytes() == again[0].read_bytes()
    assert file_hash(draws[0]) == file_hash(again[0]) != file_hash(painting)


def test_copies_are_altered_images_that_decode(painting: Path) -> None:
    original = np.asarray(load_rgb(painting))
    for kind, alteration in TRAINING.items():
        image = AugmentedImage(painting, kind, alteration.draw(np.random.default_rng(1)))
        decoded = np.asarray(load_rgb(image))
        assert decoded.ndim == 3 and decoded.shape[2] == 3
        assert decoded.shape != original.shape or not np.array_equal(decoded, original), kind
        assert np.array_equal(decoded, np.asarray(image.altered())), kind  # PNG: lossless


def test_training_settings_never_coincide_with_the_evaluation_ones(painting: Path) -> None:
    img = load_rgb(painting)
    held_out = {name: np.asarray(alteration.apply(img)) for name, alteration in alterations.EVALUATION.items()}
    rng = np.random.default_rng(0)
    for _ in range(60):
        for kind, alteration in TRAINING.items():
            altered = np.asarray(alteration.apply(img, alteration.draw(rng)))
            for name, evaluation in held_out.items():
                assert altered.shape != evaluation.shape or not np.array_equal(altered, evaluation), (kind, name)
    # The ranges themselves stay clear of the published settings.
    assert TRAINING["crop"].low > 0.70 and TRAINING["shrink"].low > 0.5 and TRAINING["jpeg"].low > 40
    assert TRAINING["rotate"].high < 5.0 and TRAINING["desaturate"].high < 1.0 and TRAINING["mirror_crop"].high < 1.0


HELD_OUT_CROP = alterations.HELD_OUT_SETTINGS["centre_crop"]
HELD_OUT_OF = {"crop": "centre_crop", "mirror_crop": "centre_crop", "shrink": "shrink", "jpeg": "recompress",
               "rotate": "rotate", "desaturate": "greyscale"}


def test_no_training_setting_equals_one_of_evaluates() -> None:
    """Every crop area, scale, JPEG quality, angle and grey fraction training draws, alone or in a chain,
    differs from evaluate's (core.alterations.HELD_OUT_SETTINGS); a range holding one is refused."""
    for kind, function in HELD_OUT_OF.items():
        assert TRAINING[kind].held_out == alterations.HELD_OUT_SETTINGS[function], kind
    rng = np.random.default_rng(0)
    drawn: dict[str, set[float]] = {kind: set() for kind in TRAINING}
    for _ in range(3000):
        for kind, setting in draw_chain(rng).steps:
            drawn[kind].add(setting)
    for kind, settings in drawn.items():
        assert settings, kind  # every kind is drawn
        held_out = set(alterations.HELD_OUT_SETTINGS.get(HELD_OUT_OF.get(kind, ""), ()))
        assert not settings & held_out, kind
        assert all(TRAINING[kind].low <= abs(value) <= TRAINING[kind].high for value in settings), kind
    assert {-1.0, 1.0} == {float(np.sign(v)) for v in drawn["rotate"]}
    with pytest.raises(ValueError, match="held-out setting 0.7"):
        TrainingAlteration("crop", alterations.centre_crop, 0.6, 0.9, held_out=HELD_OUT_CROP)
    with pytest.raises(ValueError, match="held-out setting -5"):
        TrainingAlteration("rotate", alterations.rotate, 1.0, 6.0, either_sign=True, held_out=(-5.0,))


def test_chains_combine_up_to_three_kinds_of_different_groups() -> None:
    rng = np.random.default_rng(1)
    chains = [draw_chain(rng) for _ in range(400)]
    assert {len(chain.steps) for chain in chains} == set(range(1, LONGEST_CHAIN + 1))
    order = list(TRAINING)
    for chain in chains:
        kinds = [kind for kind, _ in chain.steps]
        assert kinds == sorted(kinds, key=order.index)  # geometry, colour, then JPEG
        groups = [TRAINING[kind].group or kind for kind in kinds]
        assert len(groups) == len(set(groups))  # never two crops (they would compose into evaluate's area)


def test_views_are_drawn_per_image_and_epoch_from_the_seed(painting: Path) -> None:
    views = TrainingViews(seed=3, probability=0.5)
    names = [f"images/o{i}.jpg" for i in range(40)]
    epoch0 = [views.chain(name, 0) for name in names]
    assert epoch0 == [TrainingViews(3, 0.5).chain(name, 0) for name in names]
    assert epoch0 != [views.chain(name, 1) for name in names]
    assert epoch0 != [TrainingViews(4, 0.5).chain(name, 0) for name in names]
    altered = sum(chain is not None for chain in epoch0)
    assert 8 <= altered <= 32  # about half
    assert all(TrainingViews(3, 1.0).chain(name, 0) is not None for name in names)
    assert all(TrainingViews(3, 0.0).chain(name, 0) is None for name in names)
    img = load_rgb(painting)
    chain = next(chain for chain in epoch0 if chain is not None)
    assert np.array_equal(np.asarray(chain.apply(img)), np.asarray(chain.apply(img)))


def test_colour_jitter_moves_brightness_contrast_and_saturation(painting: Path) -> None:
    img = load_rgb(painting)
    same = alterations.jitter_colour(img, 1.0, 1.0, 1.0)
    assert np.array_equal(np.asarray(same), np.asarray(img))
    brighter = np.asarray(alterations.jitter_colour(img, 1.3, 1.0, 1.0), dtype=float)
    assert brighter.mean() > np.asarray(img, dtype=float).mean()
    duller = np.asarray(alterations.jitter_colour(img, 1.0, 1.0, 0.7), dtype=float)
    assert duller.std(axis=2).mean() < np.asarray(img, dtype=float).std(axis=2).mean()
