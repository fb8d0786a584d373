"""DVC stage score: positive/negative pairs, every descriptor's similarity, the weighted score
(given weights, or `fit` on the train pairs), the discrimination report and the descriptor study
(measured on the held-out pairs and queries only: fitted weights are never judged on their own
fitting data)."""
from __future__ import annotations

import logging
import sys

import pandas as pd

from artsim.core import layout
from artsim.core.errors import NotEnoughData
from artsim.describe.table import read_descriptors
from artsim.score.report import score_report, score_tables
from artsim.score.scorer import FILE_NAME as DESCRIPTOR_SCORE_FILE
from artsim.score.scorer import DescriptorScorer
from artsim.score.similarity import score_dataset
from artsim.score.study import descriptor_study
from stages.common import load_params, setup_logging, write_json

DESCRIPTORS = layout.DESCRIPTORS_TABLE
ORIGINALS = layout.INGESTED / layout.MANIFEST
GENERATED = layout.GENERATED / layout.MANIFEST
PAIRS = layout.PAIRS_TABLE
DESCRIPTOR_SCORE = PAIRS.parent / DESCRIPTOR_SCORE_FILE
METRICS = layout.metrics_json("score")
PLOTS = layout.plots_dir("score")

log = logging.getLogger("stages.score")


def main() -> None:
    setup_logging()
    params = load_params()
    originals, generated, descriptors = (
        pd.read_parquet(ORIGINALS),
        pd.read_parquet(GENERATED),
        read_descriptors(DESCRIPTORS),
    )
    try:
        scored = score_dataset(
            originals=originals,
            generated=generated,
            descriptors=descriptors,
            weights=params.score.weights,
            negatives=params.score.negatives,
            seed=params.seed,
        )
    except NotEnoughData as exc:  # no train or no test pair, or nothing to fit weights on: later stages could not run
        sys.exit(str(exc))
    PAIRS.parent.mkdir(parents=True, exist_ok=True)
    scored.pairs.to_parquet(PAIRS, index=False)
    # Everything the descriptor score needs outside the pipeline (the siamese stage ships it with the
    # model), with the weights the score used: fitted ones included.
    DescriptorScorer(params.describe, scored.weights, scored.stats).save(DESCRIPTOR_SCORE)
    study = descriptor_study(scored.pairs, descriptors, originals, generated, scored.stats, scored.weights,
                             scored.fitted, params.score.study_queries, params.seed,
                             params.score.study_shortlist)
    write_json(METRICS, {**score_report(scored.pairs), "study": study.headline})
    PLOTS.mkdir(parents=True, exist_ok=True)
    tables = {**score_tables(scored.pairs), "descriptor_study.csv": study.table, "redundancy.csv": study.redundancy}
    for name, table in tables.items():
        table.to_csv(PLOTS / name, index=False)
    log.info(
        "scored %d pairs; descriptor study (%d held-out pairs, %d queries):\n%s",
        len(scored.pairs),
        study.headline["heldout_pairs"],
        study.headline["retrieval"]["queries"],
        study.table.to_string(index=False),
    )


if __name__ == "__main__":
    main()
