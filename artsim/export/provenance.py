"""Where the workspace's data came from, for the card: the params each stage ran with and the
hashes of its outputs as DVC recorded them (dvc.lock: what produced these files, not what
params.yaml says today), and each original's licence and source from the ingest source's metadata.

All of it is optional: a workspace without dvc.lock (data made by hand, a copy) still exports,
and its card says what is unknown. dvc.lock and the metadata are read defensively: a damaged
one means "unknown", never a crash.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from artsim.ingest.sources.metadata_csv import CsvRow, SourceError, read_csv_rows

DVC_LOCK = "dvc.lock"
# The stages whose params decide the exported data: the originals, the variants, the pairs' scores.
DATA_STAGES = ("ingest", "generate", "score")
METADATA_CSV = "metadata.csv"


@dataclass(frozen=True)
class Provenance:
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # stage -> {key: value}
    outputs: dict[str, str] = field(default_factory=dict)  # output path -> DVC's md5

    def param(self, key: str) -> Any:
        """`ingest.source` -> its recorded value, None when unknown."""
        return self.params.get(key.split(".")[0], {}).get(key)


def read_provenance(workspace: Path) -> Provenance:
    try:
        lock = yaml.safe_load((workspace / DVC_LOCK).read_text(encoding="utf-8"))
        stages = lock["stages"]
    except (OSError, UnicodeDecodeError, yaml.YAMLError, TypeError, KeyError):
        return Provenance()
    params, outputs = {}, {}
    for name in DATA_STAGES:
        stage = stages.get(name) if isinstance(stages, dict) else None
        if not isinstance(stage, dict):
            continue
        recorded = (stage.get("params") or {}).get("params.yaml") or {}
        params[name] = {str(k): v for k, v in sorted(recorded.items())} if isinstance(recorded, dict) else {}
        for out in stage.get("outs") or []:
            if isinstance(out, dict) and str(out.get("path", "")).startswith("data/"):
                outputs[str(out["path"])] = str(out.get("md5", ""))
    return Provenance(params, outputs)


def source_licences(workspace: Path, source: Any) -> dict[str, tuple[str, str]]:
    """Source path -> (licence, source) from the ingest source's metadata.csv, where it has those
    columns (WikiArt's folder layout with a metadata file, like data/sample); else empty."""
    if not isinstance(source, str) or not source:
        return {}
    path = workspace / source / METADATA_CSV  # an absolute source stays itself
    if not path.is_file():
        return {}
    try:
        rows = [row for row in read_csv_rows(path) if isinstance(row, CsvRow)]
    except (SourceError, OSError):
        return {}
    return {row.values["filename"]: (row.values.get("license", ""), row.values.get("source", "")) for row in rows
            if row.values.get("license") or row.values.get("source")}
