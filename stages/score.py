"""DVC stage score: positive/negative pairs, descriptor similarities, weighted score, discrimination report."""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from artsim.descriptors import read_descriptors
from artsim.scoring import score_dataset, score_report
from stages.common import load_params, setup_logging, write_json

DESCRIPTORS = Path("data/descriptors/descriptors.parquet")
ORIGINALS = Path("data/ingested/manifest.parquet")
GENERATED = Path("data/generated/manifest.parquet")
PAIRS = Path("data/pairs/pairs.parquet")
METRICS = Path("metrics/score.json")

log = logging.getLogger("stages.score")


def main() -> None:
    setup_logging()
    params = load_params()
    scored = score_dataset(
        originals=pd.read_parquet(ORIGINALS),
        generated=pd.read_parquet(GENERATED),
        descriptors=read_descriptors(DESCRIPTORS),
        weights=params.score.weights,
        negatives=params.score.negatives,
        seed=params.seed,
    )
    PAIRS.parent.mkdir(parents=True, exist_ok=True)
    scored.to_parquet(PAIRS, index=False)
    write_json(METRICS, score_report(scored))
    log.info("scored %d pairs", len(scored))


if __name__ == "__main__":
    main()
