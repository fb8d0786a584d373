"""Stage generate: data/ingested -> data/generated/{images/,manifest.parquet} + metrics/generate.json."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from artsim.generate import StyleTransferBackend, generate, plan_variants
from stages.common import load_params, setup_logging, write_json

INGESTED = Path("data/ingested")
OUT_DIR = Path("data/generated")
METRICS = Path("metrics/generate.json")


def main() -> None:
    setup_logging()
    params = load_params()
    config = params.generate
    originals = pd.read_parquet(INGESTED / "manifest.parquet")
    requests = plan_variants(originals, config.strengths, config.backend, config.model, params.seed, config.max_side)
    backend = StyleTransferBackend(max_side=config.max_side)
    shutil.rmtree(OUT_DIR, ignore_errors=True)
    original_paths = dict(zip(originals["id"], originals["path"]))
    manifest, report = generate(requests, INGESTED, original_paths, OUT_DIR, backend, config.jpeg_quality)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    manifest.to_parquet(OUT_DIR / "manifest.parquet", index=False)
    write_json(METRICS, report.as_metrics(config.backend, config.model))


if __name__ == "__main__":
    main()
