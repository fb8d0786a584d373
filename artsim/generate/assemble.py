"""The stage output, packed from the store: data/generated/{shards/s<strength>-<bucket>.tar
(member images/<key>.jpg each), manifest.parquet, failures.csv} and the metrics of the run."""
from __future__ import annotations

import io
import logging
from pathlib import Path

import pandas as pd
from PIL import Image

from artsim.core.images import ImageRejected
from artsim.core.shards import SHARD_BYTES, SHARD_FOLDER, ShardWriter, bucket
from artsim.generate.run import Failure, GenerationResult
from artsim.generate.store import VariantStore
from artsim.generate.variants import Variant
from artsim.params import GenerateParams

log = logging.getLogger(__name__)

# Downstream stages read id, original_id, path, strength, style_source_id. `seed` is the
# seed of the variant's own noise for sdxl (reproducible alone with diffusers), the run's
# seed otherwise; `source` is the adopted file for import; `path` names the member of `shard`
# that `offset` and `length` locate.
MANIFEST_COLUMNS = [
    "id",
    "original_id",
    "path",
    "strength",
    "style_source_id",
    "backend",
    "model",
    "seed",
    "width",
    "height",
    "prompt",
    "source",
    "shard",
    "offset",
    "length",
]
FAILURE_COLUMNS = ["key", "original_id", "strength", "reason", "detail"]


def assemble(
    result: GenerationResult, store: VariantStore, out_dir: Path, shard_bytes: int = SHARD_BYTES
) -> pd.DataFrame:
    """Pack every stored variant of the plan into `out_dir/shards/` and return the manifest."""
    with ShardWriter(out_dir / SHARD_FOLDER, shard_bytes) as shards:
        rows = [row for variant in sorted(result.variants, key=lambda v: (v.original_id, v.strength, v.key))
                if (row := _pack(variant, result, store, shards)) is not None]
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS).astype(
        {
            "seed": "int64",
            "width": "int64",
            "height": "int64",
            "strength": "float64",
            "offset": "int64",
            "length": "int64",
        }
    )


def _pack(variant: Variant, result: GenerationResult, store: VariantStore, shards: ShardWriter) -> dict | None:
    """The manifest row of one stored variant, packed into the shards; None when it is not in the store."""
    if not store.has(variant.key):
        return None  # failed this run: reported in failures
    try:
        data = store.read_checked(variant.key)
        with Image.open(io.BytesIO(data)) as image:  # the header only
            width, height = image.size
    except (OSError, SyntaxError, ValueError, ImageRejected) as exc:
        # Damaged after the run checked the store: reported, deleted, made by the next run.
        log.warning("store: %s is damaged (%s: %s); deleting it", store.path(variant.key), type(exc).__name__, exc)
        store.discard(variant.key)
        result.failures.append(
            Failure(
                variant.key, variant.original_id, variant.strength, "damaged_in_store", f"{type(exc).__name__}: {exc}"
            )
        )
        return None
    member = f"images/{variant.key}.jpg"
    # A new strength adds shards and leaves those of the others as they were.
    shard, offset, length = shards.add(member, data, f"s{variant.strength:g}-{bucket(variant.key)}")
    return {
        "id": variant.key,
        "original_id": variant.original_id,
        "path": member,
        "strength": variant.strength,
        "style_source_id": variant.style_source_id,
        "backend": variant.backend,
        "model": variant.model,
        "seed": variant.seed,
        "width": width,
        "height": height,
        "prompt": variant.prompt,
        "source": variant.source,
        "shard": shard,
        "offset": offset,
        "length": length,
    }


def failures_table(result: GenerationResult) -> pd.DataFrame:
    rows = [vars(f) for f in result.failures]
    rows += [
        {"key": "", "original_id": o, "strength": float("nan"), "reason": "no_variant_file", "detail": ""}
        for o in result.unmatched
    ]
    return pd.DataFrame(rows, columns=FAILURE_COLUMNS)


def why_nothing_was_generated(result: GenerationResult, config: GenerateParams, originals: int) -> str:
    """One line for a run that made no variant at all: what is missing and which param or source to change."""
    if originals == 0:
        return "generate: data/ingested holds no painting to make variants of; check ingest.source"
    if config.backend == "import" and not result.variants:
        return (
            f"generate: generate.import_template {config.import_template!r} matched no file under generate.import_dir "
            f"({config.import_dir}) for any of the {originals} ingested paintings; fix one of the two"
        )
    reasons = ", ".join(f"{reason}: {count}" for reason, count in result.failed_by_reason.items())
    if not result.variants and "no_style_source" in result.failed_by_reason:
        return (
            f"generate: style_transfer restyles each painting after another painting of its own split, and no split "
            f"holds two paintings ({reasons}); ingest more paintings (ingest.source, ingest.max_images) "
            "or change generate.backend"
        )
    return (
        f"generate: none of the {len(result.variants)} planned variants could be made "
        f"({reasons or 'no failure reported'}); "
        f"see metrics/generate.json and data/generated/failures.csv"
    )


def generate_metrics(result: GenerationResult, generated: int) -> dict:
    """The headline: what the output is, the same keys on every run (failures by reason: failed_by_reason_table;
    per key: failures.csv). How the run made it (reused from the store or computed, store entries healed)
    differs between two machines with the same output, so it is logged (run_tallies), not a metric."""
    return {
        "planned": len(result.variants),
        "generated": generated,
        "failed": len(result.failures),
        "unmatched_originals": len(result.unmatched),
    }


def run_tallies(result: GenerationResult) -> str:
    """How this run made its variants, for the log."""
    return (f"{result.reused} reused, {result.computed} computed, {len(result.failures)} failed, "
            f"{result.healed} damaged store entries made again")


def failed_by_reason_table(result: GenerationResult) -> pd.DataFrame:
    counts = dict(result.failed_by_reason)
    if result.unmatched:
        counts["no_variant_file"] = counts.get("no_variant_file", 0) + len(result.unmatched)
    return pd.DataFrame(sorted(counts.items()), columns=["reason", "count"])
