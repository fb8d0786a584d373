"""Backend `import`: adopt variants generated elsewhere (e.g. the published SDXL-refiner
variants of WikiArt) instead of computing them.

`generate.import_template` maps each original to its variant file(s) under
`generate.import_dir` (e.g. `{style}/{stem}_resize768_generated.jpg`); wildcards may match
several. Strength and model are recorded from params. A variant's key includes the adopted
file's content hash, so replacing a file re-imports it. Originals without a variant are
reported, not fatal.
"""
from __future__ import annotations

from pathlib import Path
from typing import Hashable, Sequence

import pandas as pd

from artsim.config import GenerateParams
from artsim.generate.backend import Output
from artsim.generate.prompts import import_pattern
from artsim.generate.variants import Variant, variant_key
from artsim.images import file_hash, load_rgb

BACKEND = "import"
JPEG_MAGIC = b"\xff\xd8\xff"


def plan_import(originals: pd.DataFrame, config: GenerateParams, seed: int) -> tuple[list[Variant], list[str]]:
    """The variants found for each original, and the ids of originals with none."""
    assert config.import_dir is not None  # GenerateParams requires it for this backend
    root = Path(config.import_dir)
    variants: list[Variant] = []
    unmatched: list[str] = []
    for row in sorted(originals.to_dict("records"), key=lambda r: r["id"]):
        found = False
        for strength in config.strengths:
            pattern = import_pattern(config.import_template, row, float(strength))
            for path in sorted(p for p in root.glob(pattern) if p.is_file()):
                found = True
                source = path.relative_to(root).as_posix()
                key = variant_key({
                    "backend": BACKEND,
                    "model": config.model,
                    "original": row["hash"],
                    "strength": float(strength),
                    "source": source,
                    "content": file_hash(path),
                    "jpeg_quality": config.jpeg_quality,
                })
                variants.append(Variant(
                    key=key,
                    original_id=row["id"],
                    original_path=row["path"],
                    strength=float(strength),
                    backend=BACKEND,
                    model=config.model,
                    seed=seed,
                    source=source,
                ))
        if not found:
            unmatched.append(row["id"])
    return variants, unmatched


class ImportBackend:
    def __init__(self, import_dir: Path) -> None:
        self.import_dir = Path(import_dir)

    def load(self, variant: Variant) -> tuple[bytes, object]:
        path = self.import_dir / variant.source
        image = load_rgb(path)  # an unreadable file is reported like a broken original
        return path.read_bytes(), image

    def batch_group(self, variant: Variant) -> Hashable:
        return None

    def render(self, variants: Sequence[Variant], inputs: Sequence[tuple[bytes, object]]) -> list[Output]:
        # A JPEG is kept byte for byte (re-encoding would lose quality); other formats are
        # stored as JPEG from their decoded RGB pixels.
        return [data if data.startswith(JPEG_MAGIC) else image for data, image in inputs]  # type: ignore[misc]

    def recover(self) -> None:
        pass


