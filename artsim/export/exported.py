"""What an export wrote, config by config: what the dataset card is made from (artsim.export.card) and what
`artsim export dataset` reports (artsim.export.dataset)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from artsim.export.provenance import Provenance
from artsim.export.tables import Skipped, Table
from artsim.export.writer import SplitWritten


@dataclass
class Exported:
    """One config as written: its columns, the rows that made it (images dropped), files per split."""

    table: Table
    splits: dict[str, SplitWritten] = field(default_factory=dict)

    @property
    def rows(self) -> pd.DataFrame:
        return self.table.rows

    def count(self, split: str | None = None) -> int:
        return sum(w.rows for name, w in self.splits.items() if split in (None, name))


@dataclass
class ExportReport:
    folder: Path
    provenance: Provenance
    configs: dict[str, Exported] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
