"""Stage finetune: fine-tune a ResNet-50 on the ingested paintings' style or genre.

Runs alone, or as several ranks: `finetune.processes: N` (or auto) relaunches it under torchrun,
as does `torchrun --nproc-per-node=N -m stages.finetune`.
"""
from __future__ import annotations

import sys

import pandas as pd

from artsim.core import layout
from artsim.core.distributed import process_group, ranks_from_env
from artsim.core.errors import NotEnoughData
from artsim.finetune.labels import check_labels
from artsim.finetune.train import finetune_card, finetune_classifier
from artsim.learn.model_folder import CARD_FILE, WEIGHTS_FILE
from artsim.learn.models import WeightsUnavailable, initial_weights, save_weights
from artsim.learn.resume import EpochCheckpoint
from artsim.learn.training import dvclive_epoch_logger, process_group_backend, resolve_runtime
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
MODEL_DIR = layout.MODELS["finetune"]
METRICS_DIR = layout.plots_dir("finetune")  # dvclive: per-epoch curves
SUMMARY = layout.metrics_json("finetune")


def main() -> None:
    setup_logging()
    params = load_params()
    relaunch_under_torchrun(params.finetune.processes, "stages.finetune")
    ranks = ranks_from_env()
    manifest = pd.read_parquet(INGESTED / layout.MANIFEST)
    try:
        check_labels(manifest, params.finetune)  # fewer than two classes: fail before any work
        runtime = resolve_runtime(params.finetune, "finetune", ranks)
        initial_state = initial_weights(params.finetune.weights)
    except (ValueError, WeightsUnavailable) as exc:  # NotEnoughData is a ValueError
        sys.exit(str(exc))
    inputs = StageInputs.of("finetune")
    # Outside a DVC project nothing says what the run depends on: then no checkpoint is kept.
    checkpoint = inputs and EpochCheckpoint.for_stage("finetune", inputs.deps, inputs.params, runtime.describe(),
                                                      inputs.recorded, writer=ranks.is_main)
    with process_group(ranks, process_group_backend()), main_rank_live(METRICS_DIR, ranks) as live:
        try:
            result = finetune_classifier(manifest, INGESTED, params.finetune, params.seed, runtime, initial_state,
                                         on_epoch=live and dvclive_epoch_logger(live), checkpoint=checkpoint)
        except NotEnoughData as exc:  # undecodable images emptied a class
            sys.exit(str(exc))
        if live is None:
            return
        live.log_sklearn_plot("confusion_matrix", result.test_predictions["actual"],
                              result.test_predictions["predicted"], name="confusion_matrix.json")
    write_stage_summary(SUMMARY, METRICS_DIR, result.metrics)
    save_weights(result.model, MODEL_DIR / WEIGHTS_FILE)
    write_json(MODEL_DIR / CARD_FILE, finetune_card(result, params.finetune, params.seed))
    if checkpoint is not None:
        checkpoint.discard()  # the outputs are written: nothing left to resume


if __name__ == "__main__":
    main()
