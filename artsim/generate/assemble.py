"""The stage output, assembled from the store: data/generated/{images/<id>.jpg, manifest.parquet,
failures.csv} and the metrics of the run."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image

from artsim.generate.run import GenerationResult
from artsim.generate.store import VariantStore

# Downstream stages read id, original_id, path, strength, style_source_id. `seed` is the
# seed of the variant's own noise for sdxl (reproducible alone with diffusers), the run's
# seed otherwise; `source` is the adopted file for import.
MANIFEST_COLUMNS = ["id", "original_id", "path", "strength", "style_source_id", "backend", "model", "seed", "width", "height", "prompt", "source"]
FAILURE_COLUMNS = ["key", "original_id", "strength", "reason", "detail"]
# metrics/generate.json lists failures per key up to this many (failures.csv has them all).
MAX_LISTED_FAILURES = 1000


def assemble(result: GenerationResult, store: VariantStore, out_dir: Path) -> pd.DataFrame:
    """Link every stored variant of the plan into `out_dir/images/` and return the manifest."""
    rows = []
    for variant in sorted(result.variants, key=lambda v: (v.original_id, v.strength, v.key)):
        if not store.has(variant.key):
            continue  # failed this run: reported in failures
        relative_path = f"images/{variant.key}.jpg"
        store.link_into(variant.key, out_dir / relative_path)
        with Image.open(store.path(variant.key)) as image:  # the header only
            width, height = image.size
        rows.append({
            "id": variant.key,
            "original_id": variant.original_id,
            "path": relative_path,
            "strength": variant.strength,
            "style_source_id": variant.style_source_id,
            "backend": variant.backend,
            "model": variant.model,
            "seed": variant.seed,
            "width": width,
            "height": height,
            "prompt": variant.prompt,
            "source": variant.source,
        })
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS).astype({"seed": "int64", "width": "int64", "height": "int64", "strength": "float64"})


def failures_table(result: GenerationResult) -> pd.DataFrame:
    rows = [vars(f) for f in result.failures]
    rows += [{"key": "", "original_id": o, "strength": float("nan"), "reason": "no_variant_file", "detail": ""} for o in result.unmatched]
    return pd.DataFrame(rows, columns=FAILURE_COLUMNS)


def generate_metrics(result: GenerationResult, generated: int, backend: str, model: str) -> dict:
    listed = [{"key": f.key, "original_id": f.original_id, "strength": f.strength, "reason": f.reason} for f in result.failures[:MAX_LISTED_FAILURES]]
    return {
        "backend": backend,
        "model": model,
        "planned": len(result.variants),
        "generated": generated,
        "reused": result.reused,
        "computed": result.computed,
        "failed": len(result.failures),
        "failed_by_reason": result.failed_by_reason,
        "unmatched_originals": len(result.unmatched),
        "failures": listed,
        "failures_listed_all": len(result.failures) <= MAX_LISTED_FAILURES,
    }
