"""Builders shared by the generate tests: a small ingested folder and the tiny SDXL refiner."""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pandas as pd
from PIL import Image

from artsim.core.images import ImageFile
from artsim.core.shards import manifest_images
from tests.support.helpers import random_painting

STYLES = ["Impressionism", "Ukiyo_e", "Northern_Renaissance", "Baroque"]


def make_ingested(root: Path, count: int = 4, sizes: list[tuple[int, int]] | None = None) -> pd.DataFrame:
    """`count` paintings laid out like data/ingested (JPEGs named by hash + a manifest)."""
    rows = []
    for index in range(count):
        size = sizes[index % len(sizes)] if sizes else (120, 90)
        image = random_painting(100 + index, size)
        digest = hashlib.sha256(image.tobytes()).hexdigest()
        path = f"images/{digest[:16]}.jpg"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        image.save(root / path, quality=95)
        style = STYLES[index % len(STYLES)]
        rows.append({
            "id": digest[:16], "hash": digest, "path": path,
            "source_path": f"{style}/artist-{index}_painting-{index}-18{index:02d}.jpg",
            "artist": f"Artist {index}", "title": f"Painting {index}", "year": f"18{index:02d}",
            "style": style, "genre": "landscape", "split": "train", "width": size[0], "height": size[1],
        })
    manifest = pd.DataFrame(rows)
    manifest.to_parquet(root / "manifest.parquet", index=False)
    return manifest


def originals_of(ingested: tuple[pd.DataFrame, Path]) -> dict[str, ImageFile]:
    """What a backend reads originals from: each ingested painting's image by id."""
    manifest, root = ingested
    return dict(zip(manifest["id"], manifest_images(manifest, root)))


def tiny_refiner(base: Path) -> Path:
    """The tiny refiner under `base` (built once per test session: its weights are seeded)."""
    from tests.support.tiny_sdxl import build_tiny_refiner

    folder = base / "tiny-refiner"
    if not (folder / "model_index.json").is_file():
        build_tiny_refiner(folder)
    return folder


def decodes(path: ImageFile) -> bool:
    try:
        with Image.open(io.BytesIO(path.read_bytes())) as image:
            image.load()
        return True
    except Exception:  # noqa: BLE001
        return False
