"""The tables of one evaluation's inputs and outputs: the collection as evaluate reads it, and the per-pair
predictions (predictions.csv and the gallery's rows)."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

PREDICTION_COLUMNS = ["pair_id", "target", "prediction", "positive", "strength"]
UNKNOWN_STYLE = "unknown"


def collection_table(originals: pd.DataFrame) -> pd.DataFrame:
    style = originals["style"] if "style" in originals else pd.Series(None, index=originals.index, dtype=object)
    return pd.DataFrame({
        "id": originals["id"].astype(str).to_numpy(),
        "path": list(originals["path"]),
        "split": originals["split"].astype(str).to_numpy(),
        "style": [style_label(value) for value in style],
    })


def prediction_table(scored: pd.DataFrame, prediction: np.ndarray, styles: Mapping[str, str]) -> pd.DataFrame:
    return pd.DataFrame({
        "pair_id": scored["pair_id"].to_numpy(),
        "target": scored["score"].to_numpy(dtype=np.float64),
        "prediction": prediction,
        "positive": scored["positive"].to_numpy(dtype=bool),
        "strength": scored["strength"].to_numpy(dtype=np.float64),
        "style": [styles.get(str(o), UNKNOWN_STYLE) for o in scored["original_id"]],
        "original_path": scored["original_path"].to_numpy(),
        "generated_path": scored["generated_path"].to_numpy(),
    })


def style_label(value: object) -> str:
    # A manifest may hold None, NaN or "" for an unlabelled painting: one bucket for all of them.
    return UNKNOWN_STYLE if value is None or pd.isna(value) or value == "" else str(value)
