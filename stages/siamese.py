"""Stage siamese: regress the descriptor similarity score of image pairs.

Runs alone, or as several ranks: `siamese.processes: N` (or auto) relaunches it under torchrun,
as does `torchrun --nproc-per-node=N -m stages.siamese`.
"""
from __future__ import annotations

import shutil
import sys

import pandas as pd

from artsim.core import layout
from artsim.core.distributed import process_group, ranks_from_env
from artsim.learn.feature_cache import FeatureCacheTooLarge
from artsim.learn.model_folder import CARD_FILE, WEIGHTS_FILE
from artsim.learn.models import save_weights
from artsim.learn.pair_images import resolve_pairs
from artsim.learn.resume import EpochCheckpoint
from artsim.learn.training import dvclive_epoch_logger, process_group_backend, resolve_runtime
from artsim.score.scorer import FILE_NAME as DESCRIPTOR_SCORE_FILE
from artsim.score.scorer import DescriptorScoreFileError, DescriptorScorer
from artsim.siamese.model_card import model_card, training_data_summary
from artsim.siamese.train import siamese_card, train_siamese
from stages.common import (
    StageInputs,
    load_params,
    main_rank_live,
    relaunch_under_torchrun,
    setup_logging,
    write_json,
    write_stage_summary,
)

INGESTED = layout.INGESTED
GENERATED = layout.GENERATED
PAIRS = layout.PAIRS_TABLE
DESCRIPTOR_SCORE = PAIRS.parent / DESCRIPTOR_SCORE_FILE
FINETUNED = layout.MODELS["finetune"] / WEIGHTS_FILE
MODEL_DIR = layout.MODELS["siamese"]
METRICS_DIR = layout.plots_dir("siamese")  # dvclive: per-epoch curves
SUMMARY = layout.metrics_json("siamese")


def main() -> None:
    setup_logging()
    params = load_params()
    relaunch_under_torchrun(params.siamese.processes, "stages.siamese")
    ranks = ranks_from_env()
    try:
        runtime = resolve_runtime(params.siamese, "siamese", ranks)
    except ValueError as exc:
        sys.exit(str(exc))
    try:  # checked before training: the model is shipped with it
        descriptor = DescriptorScorer.load(DESCRIPTOR_SCORE)
    except DescriptorScoreFileError as exc:
        sys.exit(f"siamese: {exc} (written by the score stage: run `dvc repro score`)")
    pairs = resolve_pairs(
        pd.read_parquet(PAIRS),
        pd.read_parquet(INGESTED / layout.MANIFEST),
        pd.read_parquet(GENERATED / layout.MANIFEST),
        INGESTED,
        GENERATED,
    )
    inputs = StageInputs.of("siamese")
    # Outside a DVC project nothing says what the run depends on: then no checkpoint is kept.
    checkpoint = inputs and EpochCheckpoint.for_stage("siamese", inputs.deps, inputs.params, runtime.describe(),
                                                      inputs.recorded, writer=ranks.is_main)
    with process_group(ranks, process_group_backend()), main_rank_live(METRICS_DIR, ranks) as live:
        try:
            result = train_siamese(pairs, FINETUNED, params.siamese, params.seed, runtime,
                                   on_epoch=live and dvclive_epoch_logger(live), checkpoint=checkpoint)
        except FeatureCacheTooLarge as exc:  # found before any feature is computed
            sys.exit(str(exc))
        if live is None:
            return
    write_stage_summary(SUMMARY, METRICS_DIR, result.metrics)
    save_weights(result.model, MODEL_DIR / WEIGHTS_FILE)
    card = siamese_card(result, params.siamese, params.seed)
    write_json(MODEL_DIR / CARD_FILE, card)
    ship_for_use(card, descriptor)
    if checkpoint is not None:
        checkpoint.discard()  # the outputs are written: nothing left to resume


def ship_for_use(card: dict, descriptor: DescriptorScorer) -> None:
    """Beside the weights: what artsim.load needs for the descriptor score, and the model card for people."""
    shutil.copyfile(DESCRIPTOR_SCORE, MODEL_DIR / DESCRIPTOR_SCORE_FILE)
    data = training_data_summary(pd.read_parquet(PAIRS), pd.read_parquet(INGESTED / layout.MANIFEST),
                                 pd.read_parquet(GENERATED / layout.MANIFEST))
    (MODEL_DIR / "README.md").write_text(model_card(card, descriptor, data), encoding="utf-8")


if __name__ == "__main__":
    main()
