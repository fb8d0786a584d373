"""The run's files as the report reads them: untrusted, possibly missing (a stage that did not
run) or malformed (hand-edited, truncated). Every reader returns None instead of raising and
records why in `Gaps`, which the report shows as its list of what is missing."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

# Tables the report draws are small (metrics, curves); a bigger one is damaged, not read.
MAX_TABLE_BYTES = 64 << 20


@dataclass
class Gaps:
    """What the report could not show, and why, in the order it was found."""

    notes: list[tuple[str, str]] = field(default_factory=list)  # (file, why)

    def add(self, path: Path | str, why: str) -> None:
        entry = (Path(path).as_posix(), why)
        if entry not in self.notes:
            self.notes.append(entry)


@dataclass(frozen=True)
class Workspace:
    """A workspace's root (the report's inputs are relative to it) and the gaps found reading it."""

    root: Path
    gaps: Gaps = field(default_factory=Gaps)

    def path(self, relative: Path | str) -> Path:
        return self.root / relative

    def readable(self, relative: Path | str) -> Path | None:
        path = self.path(relative)
        if not path.is_file():
            self.gaps.add(relative, "not found: the stage that writes it has not run")
            return None
        if path.stat().st_size > MAX_TABLE_BYTES:
            self.gaps.add(relative, f"larger than {MAX_TABLE_BYTES} bytes: not read")
            return None
        return path

    def json(self, relative: Path | str) -> dict[str, Any] | None:
        """A JSON object, or None (missing, not JSON, not an object)."""
        value = self.json_value(relative)
        if value is not None and not isinstance(value, dict):
            self.gaps.add(relative, f"not a JSON object (a {type(value).__name__})")
            return None
        return value

    def json_value(self, relative: Path | str) -> Any:
        """Whatever JSON value the file holds, or None (missing, not JSON)."""
        path = self.readable(relative)
        if path is None:
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            self.gaps.add(relative, f"unreadable: {type(exc).__name__}: {exc}")
            return None

    def table(
        self, relative: Path | str, columns: Iterable[str], numeric: Iterable[str] = (), sep: str = ","
    ) -> pd.DataFrame | None:
        """A CSV/TSV with at least `columns`, its `numeric` ones as floats (empty cells NaN; rows with
        text where a number belongs dropped, and said), or None. A table without rows is a table."""
        path = self.readable(relative)
        if path is None:
            return None
        try:
            frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
        except (
            OSError,
            UnicodeDecodeError,
            ValueError,
        ) as exc:  # pandas' ParserError and EmptyDataError are ValueErrors
            self.gaps.add(relative, f"unreadable: {type(exc).__name__}: {exc}")
            return None
        return self._checked(relative, frame, list(columns), list(numeric))

    def parquet(self, relative: Path | str, columns: Iterable[str], wanted: Iterable[str] = ()) -> pd.DataFrame | None:
        """The `columns` (required) and `wanted` (if present) of a parquet table, nothing else, or None."""
        path = self.path(relative)
        if not path.is_file():
            self.gaps.add(relative, "not found: the stage that writes it has not run")
            return None
        try:
            present = set(pq.read_schema(path).names)
            missing = [c for c in columns if c not in present]
            if missing:
                self.gaps.add(relative, f"lacks the columns {missing}")
                return None
            return pd.read_parquet(path, columns=[*columns, *(c for c in wanted if c in present and c not in columns)])
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            self.gaps.add(relative, f"unreadable: {type(exc).__name__}: {exc}")
            return None

    def _checked(
        self, relative: Path | str, frame: pd.DataFrame, columns: list[str], numeric: list[str]
    ) -> pd.DataFrame | None:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            self.gaps.add(relative, f"lacks the columns {missing}")
            return None
        bad = pd.Series(False, index=frame.index)
        for name in numeric:
            # An empty cell is a figure that does not apply (NaN); other text where a number belongs is damage.
            values = pd.to_numeric(frame[name].replace("", "nan"), errors="coerce")
            bad |= (values.isna() & ~frame[name].str.strip().str.lower().isin(("", "nan", "none", "null"))) | np.isinf(
                values
            )
            frame[name] = values
        if bad.any():
            self.gaps.add(
                relative, f"{int(bad.sum())} of {len(frame)} rows have a value that is not a number: left out"
            )
        return frame[~bad].reset_index(drop=True)


def number(value: Any) -> float | None:
    """A finite float from a metrics value, else None (bools, text and NaN are not figures)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def figure_text(value: Any) -> str:
    """How the report prints one value of a metrics file: 4 significant digits for a float."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else "—"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)
