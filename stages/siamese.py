"""Stage siamese: regress the descriptor similarity score of image pairs.

Runs alone, or as several ranks: `siamese.processes: N` (or auto) relaunches it under torchrun,
as does `torchrun --nproc-per-node=N -m stages.siamese`.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from artsim.distributed import process_group, ranks_from_env
from artsim.models import resolve_pairs, save_weights
from artsim.siamese import siamese_card, train_siamese
from artsim.training import dvclive_epoch_logger, process_group_backend, resolve_runtime
from stages.common import load_params, main_rank_live, relaunch_under_torchrun, setup_logging, write_json

INGESTED = Path("data/ingested")
GENERATED = Path("data/generated")
PAIRS = Path("data/pairs/pairs.parquet")
FINETUNED = Path("models/finetune/model.safetensors")
MODEL_DIR = Path("models/siamese")
METRICS_DIR = Path("metrics/siamese")


def main() -> None:
    setup_logging()
    params = load_params()
    relaunch_under_torchrun(params.siamese.processes, "stages.siamese")
    ranks = ranks_from_env()
    try:
        runtime = resolve_runtime(params.siamese, "siamese", ranks)
    except ValueError as exc:
        sys.exit(str(exc))
    pairs = resolve_pairs(
        pd.read_parquet(PAIRS),
        pd.read_parquet(INGESTED / "manifest.parquet"),
        pd.read_parquet(GENERATED / "manifest.parquet"),
        INGESTED,
        GENERATED,
    )
    with process_group(ranks, process_group_backend()), main_rank_live(METRICS_DIR, ranks) as live:
        result = train_siamese(pairs, FINETUNED, params.siamese, params.seed, runtime,
                               on_epoch=live and dvclive_epoch_logger(live))
        if live is None:
            return
        live.summary.update(result.metrics)
    save_weights(result.model, MODEL_DIR / "model.safetensors")
    write_json(MODEL_DIR / "card.json", siamese_card(result, params.siamese, params.seed))


if __name__ == "__main__":
    main()
