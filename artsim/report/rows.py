"""Rows of the report's tables, from the metrics as the stages wrote them (dicts and tables
that may lack keys or hold the wrong types: a cell then reads "—", never a crash). Cells are
plain text; the template escapes them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

import artsim.report.tables as tables
from artsim.evaluate.scorer_inputs import SCORER_NAMES
from artsim.evaluate.verdict import PRECISION_LEVELS, level_key
from artsim.report.sources import Gaps, figure_text, number


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


def from_docs(build: Callable[[], tables.Table], caption: str, source: str, gaps: Gaps) -> Table:
    """A table of artsim.report.tables (shared with the docs, which read trusted metrics): here a
    metrics file that lacks what it needs, or holds the wrong types, is a gap, not a crash."""
    try:
        made = build()
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        gaps.add(source, f"lacks what the table '{caption}' needs ({type(exc).__name__}: {exc})")
        return Table([], [], caption)
    return Table(list(made.header), [list(row) for row in made.rows], caption)
