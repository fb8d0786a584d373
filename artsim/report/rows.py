"""Rows of the report's tables, from the metrics as the stages wrote them (dicts and tables
that may lack keys or hold the wrong types: a cell then reads "—", never a crash). Cells are
plain text; the template escapes them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from artsim.evaluate.scorer_inputs import SCORER_NAMES
from artsim.evaluate.verdict import FEW_POSITIVES, PRECISION_LEVELS, level_key
from artsim.report.sources import figure_text, number

# metrics/evaluate.json: the model's figure and the train-mean baseline's beside it.
REGRESSION = [
    ("mse", "baseline_mse"),
    ("mae", "baseline_mae"),
    ("rmse", None),
    ("r2", None),
    ("pearson", None),
    ("spearman", None),
    ("mae_positive", None),
    ("mae_negative", None),
]
EVALUATION_COUNTS = [
    "n_test_pairs",
    "n_skipped_pairs",
    "n_unreadable_images",
    "n_queries",
    "n_candidates",
    "n_candidates_test_only",
]


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[str]]
    caption: str = ""

    def __bool__(self) -> bool:
        return bool(self.rows)


def flat(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested mapping as dotted keys, sorted (as `dvc metrics show` lists them)."""
    found: dict[str, Any] = {}
    for key in sorted(tree, key=str):
        value = tree[key]
        if isinstance(value, Mapping) and value:
            found.update(flat(value, f"{prefix}{key}."))
        else:
            found[f"{prefix}{key}"] = value
    return found


def key_values(tree: Mapping[str, Any] | None, caption: str = "", skip: Iterable[str] = ()) -> Table:
    """Every figure of a metrics file, one row per dotted key (keys under `skip` left out)."""
    if not tree:
        return Table(["key", "value"], [], caption)
    skipped = tuple(f"{prefix}." for prefix in skip)
    rows = [
        [key, figure_text(value)]
        for key, value in flat(tree).items()
        if key not in skip and not key.startswith(skipped)
    ]
    return Table(["key", "value"], rows, caption)


def frame_table(frame: pd.DataFrame | None, caption: str = "", limit: int | None = None) -> Table:
    """A table file as read (untrusted text cells); with `limit`, its first rows and a caption saying so."""
    if frame is None:
        return Table([], [], caption)
    shown = _as_numbers(frame if limit is None else frame.head(limit))
    if limit is not None and len(frame) > limit:
        caption = f"{caption} (first {limit} of {len(frame)} rows)".strip()
    return Table(
        [str(c) for c in frame.columns],
        [[figure_text(v) for v in row] for row in shown.itertuples(index=False)],
        caption,
    )


def _as_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns whose every non-empty cell is a number, as floats (printed to 4 digits); the rest as read."""
    shown = frame.copy()
    for column in shown.columns:
        if not pd.api.types.is_numeric_dtype(shown[column]) and not pd.api.types.is_bool_dtype(shown[column]):
            text = shown[column].astype(str).str.strip()
            values = pd.to_numeric(text.where(text != ""), errors="coerce")
            if values.notna().sum() == (text != "").sum() and text.str.contains(r"\.", regex=True).any():
                shown[column] = values
    return shown


def counts(frame: pd.DataFrame, by: str, across: str = "split") -> Table:
    """Images per value of `by` (rows), per value of `across` (columns), with totals."""
    if by not in frame or across not in frame:
        return Table([], [])
    grid = pd.crosstab(frame[by].astype(str), frame[across].astype(str), margins=True, margins_name="total")
    return Table(
        [by, *map(str, grid.columns)], [[str(label), *(str(int(v)) for v in row)] for label, row in grid.iterrows()]
    )


def scorer_names(evaluate: Mapping[str, Any]) -> list[str]:
    """The scorers of metrics/evaluate.json (the keys holding a scorer's figures: a dict with a threshold),
    in evaluate's order (the model first), then any other."""
    found = [
        name
        for name, value in evaluate.items()
        if isinstance(value, Mapping) and level_key(PRECISION_LEVELS[0]) in value
    ]
    return sorted(
        found, key=lambda name: (SCORER_NAMES.index(name) if name in SCORER_NAMES else len(SCORER_NAMES), name)
    )


def regression(evaluate: Mapping[str, Any]) -> Table:
    """The model's errors against the descriptor score on the test pairs, beside the train-mean baseline."""
    rows = [
        [name, figure_text(number(evaluate.get(name))), figure_text(number(evaluate.get(base))) if base else ""]
        for name, base in REGRESSION
        if name in evaluate
    ]
    rows += [[name, figure_text(evaluate.get(name)), ""] for name in EVALUATION_COUNTS if name in evaluate]
    return Table(["figure", "model", "train-mean baseline"], rows)


def thresholds(evaluate: Mapping[str, Any]) -> Table:
    """Each scorer's thresholds at the precision levels and the held-out pairs they rest on."""
    levels = [f"threshold at {level:.0%} precision" for level in PRECISION_LEVELS]
    rows = []
    for name in scorer_names(evaluate):
        figures = evaluate[name]
        positives = figures.get("threshold_positives")
        note = (
            f"rough: under {FEW_POSITIVES} positives"
            if isinstance(positives, int) and positives < FEW_POSITIVES
            else ""
        )
        rows.append(
            [
                name,
                *(figure_text(number(figures.get(level_key(level)))) for level in PRECISION_LEVELS),
                figure_text(positives),
                figure_text(figures.get("threshold_negatives")),
                note,
            ]
        )
    return Table(["scorer", *levels, "positives", "negatives", "note"], rows)


def verdict(shipped: Mapping[str, Any]) -> Table:
    """models/verdict.json, validated: the model's thresholds as artsim compare/search use them."""
    levels = shipped.get("levels") if isinstance(shipped.get("levels"), list) else []
    rows = [
        [
            figure_text(number(level.get("precision"))),
            figure_text(number(level.get("threshold"))),
            figure_text(number(level.get("recall"))),
        ]
        for level in levels
        if isinstance(level, Mapping)
    ]
    return Table(["precision", "threshold", "recall at it"], rows)


def pivot(table: pd.DataFrame | None, index: str, columns: str, value: str, order: Sequence[str] = ()) -> Table:
    """`value` of a long table laid out with one row per `index` and one column per `columns`."""
    if table is None or table.empty:
        return Table([], [])
    grid = table.pivot_table(index=index, columns=columns, values=value, aggfunc="first", sort=True)
    known = [c for c in order if c in grid.columns]
    grid = grid[known + [c for c in grid.columns if c not in known]]
    return Table(
        [index, *map(str, grid.columns)],
        [[str(label), *(figure_text(number(v)) for v in row)] for label, row in grid.iterrows()],
        f"{value}, by {index} and {columns}",
    )
