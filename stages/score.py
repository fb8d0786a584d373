"""DVC stage score: positive/negative pairs, descriptor similarities, weighted score, discrimination report."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import pandas as pd

from artsim.descriptor_score import FILE_NAME as DESCRIPTOR_SCORE_FILE
from artsim.descriptor_score import DescriptorScorer
from artsim.descriptors import read_descriptors
from artsim.errors import NotEnoughData
from artsim.score_report import score_report, score_tables
from artsim.scoring import score_dataset, train_texture_stats
from stages.common import load_params, setup_logging, write_json

DESCRIPTORS = Path("data/descriptors/descriptors.parquet")
ORIGINALS = Path("data/ingested/manifest.parquet")
GENERATED = Path("data/generated/manifest.parquet")
PAIRS = Path("data/pairs/pairs.parquet")
DESCRIPTOR_SCORE = PAIRS.parent / DESCRIPTOR_SCORE_FILE
METRICS = Path("metrics/score.json")
PLOTS = Path("metrics/score")

log = logging.getLogger("stages.score")


def main() -> None:
    setup_logging()
    params = load_params()
    originals, descriptors = pd.read_parquet(ORIGINALS), read_descriptors(DESCRIPTORS)
    try:
        scored = score_dataset(
            originals=originals,
            generated=pd.read_parquet(GENERATED),
            descriptors=descriptors,
            weights=params.score.weights,
            negatives=params.score.negatives,
            seed=params.seed,
        )
    except NotEnoughData as exc:  # no train or no test pair: later stages could not run
        sys.exit(str(exc))
    PAIRS.parent.mkdir(parents=True, exist_ok=True)
    scored.to_parquet(PAIRS, index=False)
    # Everything the descriptor score needs outside the pipeline (the siamese stage ships it with the model).
    DescriptorScorer(params.describe, params.score.weights, train_texture_stats(descriptors, originals)).save(DESCRIPTOR_SCORE)
    write_json(METRICS, score_report(scored))
    PLOTS.mkdir(parents=True, exist_ok=True)
    for name, table in score_tables(scored).items():
        table.to_csv(PLOTS / name, index=False)
    log.info("scored %d pairs", len(scored))


if __name__ == "__main__":
    main()
