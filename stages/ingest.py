"""Stage ingest: a WikiArt source -> data/ingested/{shards/,manifest.parquet,skipped.csv} + metrics/ingest.json."""
from __future__ import annotations

import os
import shutil

from artsim.core import layout
from artsim.ingest.run import IngestSettings, dataset_problem, ingest, select_subset
from artsim.ingest.sources.formats import SourceError, SourceImage, read_source
from stages.common import load_params, setup_logging, write_json

OUT_DIR = layout.INGESTED
METRICS = layout.metrics_json("ingest")
PLOTS = layout.plots_dir("ingest")


def main() -> None:
    setup_logging()
    config = load_params().ingest
    if not config.source.is_dir():
        raise SystemExit(f"ingest.source: {config.source} is not a folder")
    settings = IngestSettings(
        max_side=config.max_side,
        min_side=config.min_side,
        max_pixels=config.max_pixels,
        jpeg_quality=config.jpeg_quality,
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
        split_method=config.split,
        split_seed=config.split_seed,
        max_file_bytes=config.max_file_bytes,
        workers=config.workers or os.cpu_count() or 1,
    )
    try:
        # File-level problems of the source (a metadata file, a shard) surface here, before any image is read.
        items = read_source(config.source, config.format)
        total = None
        if config.max_images or config.per_class:
            # Only a subset needs a first pass over the source (labels only are kept) to pick it.
            chosen = select_subset(items, config.max_images, config.per_class, config.stratify_by, config.split_seed)
            items = (
                item for item in read_source(config.source, config.format)
                if not isinstance(item, SourceImage) or item.relative in chosen
            )
            total = len(chosen)
    except SourceError as exc:
        raise SystemExit(f"ingest.source: {exc}") from None
    shutil.rmtree(OUT_DIR, ignore_errors=True)
    report = ingest(items, OUT_DIR, settings, total=total)
    write_json(METRICS, report.as_metrics())
    PLOTS.mkdir(parents=True, exist_ok=True)
    report.skipped_by_reason_table().to_csv(PLOTS / "skipped_by_reason.csv", index=False)
    problem = dataset_problem(report, settings, config.source, OUT_DIR)
    if problem:
        raise SystemExit(f"ingest: {problem}")


if __name__ == "__main__":
    main()
