"""Stage finetune: fine-tune a ResNet-50 on the ingested paintings' style or genre."""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
from dvclive import Live

from artsim.models import WeightsUnavailable, initial_weights, save_weights
from artsim.training import dvclive_epoch_logger, finetune_card, finetune_classifier
from stages.common import load_params, setup_logging, write_json

INGESTED = Path("data/ingested")
MODEL_DIR = Path("models/finetune")
METRICS_DIR = Path("metrics/finetune")


def main() -> None:
    setup_logging()
    params = load_params()
    try:
        initial_state = initial_weights(params.finetune.weights)
    except WeightsUnavailable as exc:
        sys.exit(str(exc))
    manifest = pd.read_parquet(INGESTED / "manifest.parquet")
    with Live(dir=str(METRICS_DIR), dvcyaml=None, save_dvc_exp=False, report=None) as live:
        result = finetune_classifier(
            manifest, INGESTED, params.finetune, params.seed, initial_state, on_epoch=dvclive_epoch_logger(live)
        )
        live.summary.update(result.metrics)
    save_weights(result.model, MODEL_DIR / "model.safetensors")
    write_json(MODEL_DIR / "card.json", finetune_card(result, params.finetune, params.seed))


if __name__ == "__main__":
    main()
