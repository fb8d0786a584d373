"""A picture of what the error numbers mean: test pairs side by side with their scores.

One row per pair (original | variant | scores), for the pairs the model got most right
(smallest |prediction - target|), the median ones and the ones it got most wrong, in
increasing error. Everything is deterministic: ties in the error are broken by pair_id,
and the text uses PIL's bundled default font.
"""
from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw, ImageFont, ImageOps

from artsim.core.images import ImageFile, ImageRejected, load_rgb

THUMB = 128
TEXT_WIDTH = 240
PAD = 6
HEADER = 24
LINE = 12
PER_GROUP = 3
BACKGROUND = (255, 255, 255)
PLACEHOLDER = (200, 200, 200)
INK = (0, 0, 0)
# The columns a row needs: what evaluation keeps of each predicted pair, plus its two files.
PICK_COLUMNS = ["pair_id", "original_path", "generated_path", "target", "prediction", "positive", "strength"]


def gallery_picks(predictions: pd.DataFrame, per_group: int = PER_GROUP) -> pd.DataFrame:
    """The best, median and worst `per_group` pairs by absolute error, in increasing error.

    Adds `abs_error` and `group` (best | median | worst). With fewer than 3 x per_group pairs
    the groups overlap; each pair is then shown once, under the first of best, worst, median.
    """
    ranked = (
        predictions[PICK_COLUMNS]
        .assign(abs_error=(predictions["prediction"] - predictions["target"]).abs())
        .sort_values(["abs_error", "pair_id"], kind="stable")
        .reset_index(drop=True)
    )
    n = len(ranked)
    middle = max(0, n // 2 - per_group // 2)
    groups = {
        "best": range(0, min(per_group, n)),
        "worst": range(max(0, n - per_group), n),
        "median": range(middle, min(n, middle + per_group)),
    }
    group_of: dict[int, str] = {}
    for name, positions in groups.items():
        for position in positions:
            group_of.setdefault(position, name)
    shown = sorted(group_of)
    return ranked.iloc[shown].assign(group=[group_of[p] for p in shown]).reset_index(drop=True)


def weights_text(weights: Mapping[str, float]) -> str:
    """The descriptor score as configured: its parts (the weights in force) and their weights."""
    return "descriptor score = weighted mean of " + ", ".join(f"{name} (weight {w:g})" for name, w in weights.items())


def render_gallery(picks: pd.DataFrame, thumb: int = THUMB, weights: Mapping[str, float] | None = None) -> Image.Image:
    """Rows of original | variant | scores under a header, one per row of `picks` (see gallery_picks);
    with `weights`, the header says what the descriptor score is made of."""
    font = ImageFont.load_default()
    row_height = thumb + PAD
    width = 3 * PAD + 2 * thumb + TEXT_WIDTH
    # About 6 px a character in PIL's default font.
    legend = textwrap.wrap(weights_text(weights), (width - 2 * PAD) // 6) if weights else []
    header = HEADER + LINE * len(legend)
    height = header + max(1, len(picks)) * row_height + PAD
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    text_x = 3 * PAD + 2 * thumb
    for x, title in ((PAD, "original"), (2 * PAD + thumb, "variant"), (text_x, "scores (descriptor = target)")):
        draw.text((x, PAD), title, fill=INK, font=font)
    for number, line in enumerate(legend):
        draw.text((PAD, HEADER - PAD + number * LINE), line, fill=INK, font=font)
    if picks.empty:
        draw.text((PAD, header), "no test pair was evaluated", fill=INK, font=font)
    for number, row in enumerate(picks.itertuples(index=False)):
        top = header + number * row_height
        canvas.paste(_thumbnail(row.original_path, thumb), (PAD, top))
        canvas.paste(_thumbnail(row.generated_path, thumb), (2 * PAD + thumb, top))
        draw.multiline_text((text_x, top), "\n".join(_row_text(row)), fill=INK, font=font, spacing=4)
    return canvas


def write_gallery(predictions: pd.DataFrame, path: Path, per_group: int = PER_GROUP,
                  weights: Mapping[str, float] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    render_gallery(gallery_picks(predictions, per_group), weights=weights).save(path, format="PNG")


def _row_text(row) -> list[str]:
    kind = "positive" if row.positive else "negative"
    return [
        f"{row.group}: {kind}, strength {row.strength:g}",
        f"descriptor score {row.target:.3f}",
        f"model score {row.prediction:.3f}",
        f"absolute error {row.abs_error:.3f}",
        f"pair {row.pair_id}",
    ]


def _thumbnail(path: ImageFile, size: int) -> Image.Image:
    """The image fitted into size x size (aspect kept, centred); a grey tile if it no longer decodes."""
    try:
        image = ImageOps.contain(load_rgb(path), (size, size))
    except ImageRejected:
        return Image.new("RGB", (size, size), PLACEHOLDER)
    tile = Image.new("RGB", (size, size), BACKGROUND)
    tile.paste(image, ((size - image.width) // 2, (size - image.height) // 2))
    return tile
