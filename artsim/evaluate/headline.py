"""The few figures `dvc exp show` and `dvc metrics diff` compare: the regression of the descriptor
score and, per scorer, recall@1 among the collection, pair AUC and the threshold at 90% precision.

They are picked from the full report (metrics/evaluate.json), which stays a plain data file: its
~90 figures made `dvc exp show` 290 columns wide. Keys are short because they are column names.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from artsim.evaluate.breakdowns import HEADLINE_SCORERS

REGRESSION = ("mse", "mae", "r2")
# headline key -> the report's key, per scorer; fused is a ranking only, so it has recall@1 alone.
PER_SCORER = {"recall_at_1": "recall_at_1", "auc": "pair_auc", "threshold_90": "threshold_at_precision_90"}


def headline(report: Mapping[str, Any]) -> dict[str, Any]:
    """{mse, mae, r2, recall_at_1: {scorer: x}, auc: {...}, threshold_90: {...}} from the report
    evaluate writes; a figure the report lacks or holds as null is left out."""
    figures: dict[str, Any] = {key: report[key] for key in REGRESSION}
    for name, source in PER_SCORER.items():
        values = {scorer: (report.get(scorer) or {}).get(source) for scorer in HEADLINE_SCORERS}
        figures[name] = {scorer: value for scorer, value in values.items() if value is not None}
    return figures
