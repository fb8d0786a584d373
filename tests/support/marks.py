"""What the tests of search marks share: images unrelated to every original, and a model whose verdict.json holds
thresholds measured as evaluate measures them (derived copies against unrelated originals), per scorer, and fused's
calibration fitted as evaluate fits it (here on those same pairs: the fixture has no val split)."""
from __future__ import annotations

from itertools import permutations
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import artsim
from artsim.core.alterations import recompress, shrink
from artsim.core.hashes import hash_similarity, phash_bits
from artsim.core.images import file_hash, load_rgb
from artsim.evaluate.calibration import calibrated, fit_calibration
from artsim.evaluate.verdict import ShippedThresholds, Thresholds, thresholds_at_precision
from artsim.index.query import Calibration
from tests.support.helpers import write_untrained_model

COPIES = (lambda img: recompress(img, 40), lambda img: shrink(img, 0.5))


def unrelated_images(size: tuple[int, int] = (120, 90)) -> dict[str, Image.Image]:
    """Drawn shapes, seeded noise and a flat colour: derived from no original."""
    shapes = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(shapes)
    draw.ellipse((10, 10, 60, 60), fill="yellow")
    draw.rectangle((70, 30, 110, 80), fill="red")
    noise = Image.fromarray(np.random.default_rng(7).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    return {"shapes": shapes, "noise": noise, "flat": Image.new("RGB", size, (40, 90, 160))}


def measured_scores(model_dir: Path, originals: list[Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(derived?, score) of every copy against its source and every original against every other, per scorer."""
    scorer, images = artsim.load(model_dir), [load_rgb(path) for path in originals]
    pairs = [(copy(image), image, True) for image in images for copy in COPIES]
    pairs += [(a, b, False) for a, b in permutations(images, 2)]
    positive = np.array([derived for _, _, derived in pairs])
    model = np.array([scorer.score(a, b).model_score for a, b, _ in pairs])
    phash = np.array([hash_similarity(phash_bits(a), phash_bits(b)) for a, b, _ in pairs])
    return {"model": (positive, model), "phash": (positive, phash)}


def ship(model_dir: Path, by_scorer: dict[str, Thresholds], calibration: Calibration | None = None) -> None:
    ShippedThresholds.of(file_hash(model_dir / "model.safetensors"), by_scorer, calibration=calibration).save(
        model_dir.parent / "verdict.json")


def marked_model(folder: Path, originals: list[Path]) -> Path:
    """An untrained model (in folder/siamese) shipped with each scorer's thresholds measured on `originals`, fused's
    calibration and its thresholds among them."""
    model_dir = write_untrained_model(folder / "siamese")
    measured = measured_scores(model_dir, originals)
    positive = measured["model"][0]
    scores = {name: values for name, (_, values) in measured.items()}
    calibration = fit_calibration(scores, positive, seed=0)
    scores["fused"] = calibrated(calibration, scores)
    ship(model_dir, {name: thresholds_at_precision(positive, values) for name, values in scores.items()}, calibration)
    return model_dir


# How a hit's verdict sentence names the value each scorer judges it by.
VALUE_WORDS = {"model": "model score", "phash": "pHash similarity", "fused": "calibrated p(derived)"}


def check_hit_verdict(hit: dict, scorer: str, thresholds: Thresholds) -> None:
    """A search hit's verdict sentence (`verdict_text`) by `scorer`'s own thresholds: the value it judges named,
    with the threshold, its precision and interval, and the held-out pairs beneath; derived for a marked hit, no
    evidence (below the 90% threshold) for an unmarked one."""
    text, value = hit["verdict_text"], f"{VALUE_WORDS[scorer]} = {hit['score']:.3f}"
    assert f"on {thresholds.positives} derived / {thresholds.negatives} unrelated held-out pairs" in text, text
    if hit["likely_derived"]:
        assert text.startswith(("derived: likely (", "derived: very likely (")) and f"({value} >= " in text, text
    else:
        start = f"no evidence of derivation ({value} < {thresholds.at_precision[0.9]:.3f}; 90% precision, 95% CI "
        assert hit["likely_derived"] is False and text.startswith(start), text
