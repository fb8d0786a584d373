"""The gallery of best, median and worst test pairs: which pairs, what it looks like, determinism."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from artsim.evaluate.gallery import (
    HEADER,
    PAD,
    PICK_COLUMNS,
    PLACEHOLDER,
    TEXT_WIDTH,
    THUMB,
    gallery_picks,
    render_gallery,
    write_gallery,
)


def _predictions(root: Path, errors: list[float]) -> pd.DataFrame:
    """One pair per error, each image a solid colour that tells the pair (and side) apart."""
    rows = []
    for i, error in enumerate(errors):
        original, generated = root / f"o{i}.png", root / f"g{i}.png"
        Image.new("RGB", (40, 30), (10 * i, 0, 100)).save(original)
        Image.new("RGB", (30, 40), (10 * i, 200, 0)).save(generated)
        rows.append({
            "pair_id": f"p{i:02d}", "target": 0.5, "prediction": 0.5 + error, "positive": i % 2 == 0,
            "strength": 0.25, "original_path": original, "generated_path": generated,
        })
    return pd.DataFrame(rows, columns=PICK_COLUMNS)


def test_picks_are_best_median_worst_in_increasing_error(tmp_path: Path) -> None:
    errors = [0.01 * i * (-1) ** i for i in range(20)]  # |error| = 0.01 * i, signs alternating
    picks = gallery_picks(_predictions(tmp_path, errors).sample(frac=1.0, random_state=0), per_group=3)
    assert picks["pair_id"].tolist() == ["p00", "p01", "p02", "p09", "p10", "p11", "p17", "p18", "p19"]
    assert picks["group"].tolist() == ["best"] * 3 + ["median"] * 3 + ["worst"] * 3
    assert picks["abs_error"].is_monotonic_increasing


def test_few_pairs_are_each_shown_once(tmp_path: Path) -> None:
    picks = gallery_picks(_predictions(tmp_path, [0.3, 0.1]), per_group=3)
    assert picks["pair_id"].tolist() == ["p01", "p00"]
    assert picks["group"].tolist() == ["best", "best"]
    assert gallery_picks(_predictions(tmp_path, []), per_group=3).empty


def test_ties_in_the_error_are_broken_by_pair_id(tmp_path: Path) -> None:
    predictions = _predictions(tmp_path, [0.2] * 8)
    first = gallery_picks(predictions, per_group=2)
    again = gallery_picks(predictions.iloc[::-1], per_group=2)
    assert first["pair_id"].tolist() == again["pair_id"].tolist() == ["p00", "p01", "p03", "p04", "p06", "p07"]


def test_gallery_rows_show_both_images_and_the_scores(tmp_path: Path) -> None:
    predictions = _predictions(tmp_path, [0.05, 0.4, 0.2])
    Path(predictions.loc[1, "generated_path"]).write_bytes(b"not an image")  # unreadable by now: a grey tile
    gallery = render_gallery(gallery_picks(predictions, per_group=1))
    assert gallery.size == (3 * PAD + 2 * THUMB + TEXT_WIDTH, HEADER + 3 * (THUMB + PAD) + PAD)
    pixels = np.asarray(gallery)
    for row, pair in enumerate([0, 2, 1]):  # increasing error
        centre_y = HEADER + row * (THUMB + PAD) + THUMB // 2
        assert tuple(pixels[centre_y, PAD + THUMB // 2]) == (10 * pair, 0, 100)
        expected_variant = PLACEHOLDER if pair == 1 else (10 * pair, 200, 0)
        assert tuple(pixels[centre_y, 2 * PAD + THUMB + THUMB // 2]) == expected_variant
        text_area = pixels[HEADER + row * (THUMB + PAD): HEADER + row * (THUMB + PAD) + THUMB, 3 * PAD + 2 * THUMB:]
        assert (text_area < 128).any()  # some text was drawn


def test_gallery_file_is_deterministic(tmp_path: Path) -> None:
    predictions = _predictions(tmp_path, [0.01 * i for i in range(12)])
    write_gallery(predictions, tmp_path / "a/gallery.png")
    write_gallery(predictions.sample(frac=1.0, random_state=1), tmp_path / "b/gallery.png")
    assert (tmp_path / "a/gallery.png").read_bytes() == (tmp_path / "b/gallery.png").read_bytes()
    with Image.open(tmp_path / "a/gallery.png") as image:
        assert image.height == HEADER + 9 * (THUMB + PAD) + PAD


def test_no_pairs_still_give_an_image(tmp_path: Path) -> None:
    write_gallery(_predictions(tmp_path, []), tmp_path / "gallery.png")
    with Image.open(tmp_path / "gallery.png") as image:
        assert image.size == (3 * PAD + 2 * THUMB + TEXT_WIDTH, HEADER + THUMB + PAD + PAD)
