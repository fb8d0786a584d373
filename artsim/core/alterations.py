"""What a derived image undergoes on its way around the web: mirrored, cropped, shrunk,
recompressed, tilted, turned grey. One function per kind, each taking its strength as an
argument, so that evaluation (fixed, published settings) and training augmentation (settings
drawn at random from other ranges) apply the same family with different parameters.

Every alteration takes and returns an RGB PIL image and is deterministic given its arguments.
"""
from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from PIL import Image, ImageEnhance, ImageOps

# Never shrink or crop below this many pixels on a side: the trunk and the peers need some.
MIN_SIDE = 8


def mirror(img: Image.Image) -> Image.Image:
    """Left and right swapped."""
    return ImageOps.mirror(img)


def centre_crop(img: Image.Image, area: float) -> Image.Image:
    """The centre of the image keeping `area` (0 < area <= 1) of its pixels, aspect unchanged."""
    if not 0.0 < area <= 1.0:
        raise ValueError(f"area must be in (0, 1], got {area}")
    scale = math.sqrt(area)
    width, height = img.size
    new_w, new_h = max(min(MIN_SIDE, width), round(width * scale)), max(min(MIN_SIDE, height), round(height * scale))
    left, top = (width - new_w) // 2, (height - new_h) // 2
    return img.crop((left, top, left + new_w, top + new_h))


def shrink(img: Image.Image, scale: float) -> Image.Image:
    """Resized by `scale` (0 < scale <= 1) on both sides."""
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    width, height = img.size
    size = (max(min(MIN_SIDE, width), round(width * scale)), max(min(MIN_SIDE, height), round(height * scale)))
    return img.resize(size, Image.Resampling.BILINEAR)


def recompress(img: Image.Image, quality: int) -> Image.Image:
    """Saved as JPEG at `quality` (1..95) and decoded again."""
    if not 1 <= quality <= 95:
        raise ValueError(f"quality must be in 1..95, got {quality}")
    buffer = io.BytesIO()
    img.convert("RGB").save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def rotate(img: Image.Image, degrees: float) -> Image.Image:
    """Rotated by `degrees` about the centre, same size, the uncovered corners white (as a
    reproduction's margin would be)."""
    return img.rotate(degrees, resample=Image.Resampling.BILINEAR, expand=False, fillcolor=(255, 255, 255))


def greyscale(img: Image.Image) -> Image.Image:
    """Luminance only, back in RGB."""
    return ImageOps.grayscale(img).convert("RGB")


def jitter_colour(img: Image.Image, brightness: float, contrast: float, saturation: float) -> Image.Image:
    """Brightness, contrast and saturation each multiplied by its factor (1: unchanged)."""
    img = ImageEnhance.Brightness(img).enhance(brightness)
    img = ImageEnhance.Contrast(img).enhance(contrast)
    return ImageEnhance.Color(img).enhance(saturation)


@dataclass(frozen=True)
class Alteration:
    """One named alteration at one setting: `apply(img)` alters a copy."""

    name: str
    apply: Callable[[Image.Image], Image.Image]


# The settings of evaluate's held-out alterations, by the function they are the argument of:
# training draws its settings from ranges that hold none of them (artsim.learn.augment checks).
HELD_OUT_CROP_AREA = 0.70
HELD_OUT_SCALE = 0.5
HELD_OUT_JPEG_QUALITY = 40
HELD_OUT_DEGREES = 5.0
HELD_OUT_SETTINGS: Mapping[str, tuple[float, ...]] = {
    "centre_crop": (HELD_OUT_CROP_AREA,),
    "shrink": (HELD_OUT_SCALE,),
    "recompress": (HELD_OUT_JPEG_QUALITY,),
    "rotate": (HELD_OUT_DEGREES, -HELD_OUT_DEGREES),
    "greyscale": (1.0,),  # the fraction desaturated: evaluation's greyscale takes all of the colour
}

# The held-out transformed set of evaluate: fixed settings, never drawn in training.
EVALUATION: Mapping[str, Alteration] = {
    alteration.name: alteration
    for alteration in (
        Alteration("mirror", mirror),
        Alteration("crop_70", lambda img: centre_crop(img, HELD_OUT_CROP_AREA)),
        Alteration("half_size", lambda img: shrink(img, HELD_OUT_SCALE)),
        Alteration("jpeg_40", lambda img: recompress(img, HELD_OUT_JPEG_QUALITY)),
        Alteration("rotate_5", lambda img: rotate(img, HELD_OUT_DEGREES)),
        Alteration("greyscale", greyscale),
        # Copies travel through several alterations at once: mirrored, then cropped, then recompressed.
        Alteration("combined", lambda img: recompress(centre_crop(mirror(img), HELD_OUT_CROP_AREA),
                                                      HELD_OUT_JPEG_QUALITY)),
    )
}
