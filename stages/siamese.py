"""Stage siamese: regress the descriptor similarity score of image pairs."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from dvclive import Live

from artsim.models import resolve_pairs, save_weights
from artsim.training import dvclive_epoch_logger, siamese_card, train_siamese
from stages.common import load_params, setup_logging, write_json

INGESTED = Path("data/ingested")
GENERATED = Path("data/generated")
PAIRS = Path("data/pairs/pairs.parquet")
FINETUNED = Path("models/finetune/model.safetensors")
MODEL_DIR = Path("models/siamese")
METRICS_DIR = Path("metrics/siamese")


def main() -> None:
    setup_logging()
    params = load_params()
    pairs = resolve_pairs(
        pd.read_parquet(PAIRS),
        pd.read_parquet(INGESTED / "manifest.parquet"),
        pd.read_parquet(GENERATED / "manifest.parquet"),
        INGESTED,
        GENERATED,
    )
    with Live(dir=str(METRICS_DIR), dvcyaml=None, save_dvc_exp=False, report=None) as live:
        result = train_siamese(pairs, FINETUNED, params.siamese, params.seed, on_epoch=dvclive_epoch_logger(live))
        live.summary.update(result.metrics)
    save_weights(result.model, MODEL_DIR / "model.safetensors")
    write_json(MODEL_DIR / "card.json", siamese_card(result, params.siamese, params.seed))


if __name__ == "__main__":
    main()
