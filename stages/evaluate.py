"""Stage evaluate: the siamese model's errors on the test pairs, against the mean-score baseline."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from artsim.evaluation import evaluate_on_test
from artsim.models import load_siamese, resolve_pairs
from stages.common import load_params, setup_logging, write_json

INGESTED = Path("data/ingested")
GENERATED = Path("data/generated")
PAIRS = Path("data/pairs/pairs.parquet")
MODEL_DIR = Path("models/siamese")
REPORT = Path("metrics/evaluate.json")
PREDICTIONS = Path("metrics/evaluate/predictions.csv")


def main() -> None:
    setup_logging()
    params = load_params()
    card = json.loads((MODEL_DIR / "card.json").read_text(encoding="utf-8"))
    model = load_siamese(MODEL_DIR / "model.safetensors", head_hidden=card["head_hidden"])
    pairs = resolve_pairs(
        pd.read_parquet(PAIRS),
        pd.read_parquet(INGESTED / "manifest.parquet"),
        pd.read_parquet(GENERATED / "manifest.parquet"),
        INGESTED,
        GENERATED,
    )
    report, predictions = evaluate_on_test(model, pairs, card["image_size"], params.evaluate.batch_size)
    write_json(REPORT, report)
    PREDICTIONS.parent.mkdir(parents=True, exist_ok=True)
    predictions.to_csv(PREDICTIONS, index=False)


if __name__ == "__main__":
    main()
