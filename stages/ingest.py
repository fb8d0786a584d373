"""Stage ingest: WikiArt folder -> data/ingested/{images/,manifest.parquet,skipped.csv} + metrics/ingest.json."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from artsim.ingest import IngestSettings, ingest, scan_folder
from stages.common import load_params, setup_logging, write_json

OUT_DIR = Path("data/ingested")
METRICS = Path("metrics/ingest.json")


def main() -> None:
    setup_logging()
    params = load_params()
    config = params.ingest
    if not config.source.is_dir():
        raise SystemExit(f"ingest.source: {config.source} is not a folder")
    settings = IngestSettings(
        max_side=config.max_side,
        min_side=config.min_side,
        max_pixels=config.max_pixels,
        jpeg_quality=config.jpeg_quality,
        val_fraction=config.split.val,
        test_fraction=config.split.test,
        seed=params.seed,
    )
    shutil.rmtree(OUT_DIR, ignore_errors=True)
    sources = list(scan_folder(config.source))
    manifest, report = ingest(sources, OUT_DIR, settings, total=len(sources))
    manifest.to_parquet(OUT_DIR / "manifest.parquet", index=False)
    pd.DataFrame(report.skipped_files, columns=["source_path", "reason", "detail"]).to_csv(OUT_DIR / "skipped.csv", index=False)
    write_json(METRICS, report.as_metrics())


if __name__ == "__main__":
    main()
