"""What a workspace holds (`artsim info`): images, variants, models with their params and
headline metrics, and which stages `dvc status` calls stale."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from artsim.core import layout
from artsim.learn.model_folder import CARD_FILE, WEIGHTS_FILE

INGESTED = layout.INGESTED / layout.MANIFEST
GENERATED = layout.GENERATED / layout.MANIFEST
PAIRS = layout.PAIRS_TABLE
MODELS = layout.MODELS
METRICS = {name: layout.metrics_json(name) for name in MODELS}
EVALUATE = layout.metrics_json("evaluate")
# The test figures worth a line: regression against the descriptor score, and source retrieval.
EVALUATE_HEADLINE = ("mse", "mae", "r2", "pearson", "spearman", "baseline_mse", "n_test_pairs")
DVC_STATUS_TIMEOUT_S = 120


def workspace_info(workspace: Path, with_status: bool = True) -> dict[str, Any]:
    """Everything `artsim info` shows, as JSON-ready data; a part that is missing is null."""
    return {
        "workspace": str(workspace.resolve()),
        "originals": _originals(workspace / INGESTED),
        "variants": _variants(workspace / GENERATED),
        "pairs": _pairs(workspace / PAIRS),
        "models": {name: _model(workspace, name) for name in MODELS},
        "stale_stages": stale_stages(workspace) if with_status else None,
        "stale_stages_checked": with_status,
    }


def _read(path: Path, columns: list[str] | None = None) -> pd.DataFrame | None:
    try:
        return pd.read_parquet(path, columns=columns)
    except (OSError, ValueError, KeyError):
        return None


def _originals(path: Path) -> dict[str, Any] | None:
    manifest = _read(path)
    if manifest is None:
        return None
    return {"count": len(manifest), "by_split": _counts(manifest, "split"), "styles": int(manifest["style"].nunique())
            if "style" in manifest else None}


def _variants(path: Path) -> dict[str, Any] | None:
    manifest = _read(path)
    if manifest is None:
        return None
    return {"count": len(manifest), "by_backend": _counts(manifest, "backend"),
            "strengths": sorted(float(s) for s in manifest["strength"].unique()) if "strength" in manifest else None}


def _pairs(path: Path) -> dict[str, Any] | None:
    pairs = _read(path, ["split", "positive"])
    if pairs is None:
        return None
    return {"count": len(pairs), "positives": int(pairs["positive"].sum()), "by_split": _counts(pairs, "split")}


def _counts(table: pd.DataFrame, column: str) -> dict[str, int] | None:
    if column not in table:
        return None
    return {str(k): int(v) for k, v in table[column].astype(str).value_counts().sort_index().items()}


def _json(path: Path) -> dict[str, Any] | None:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def _model(workspace: Path, name: str) -> dict[str, Any]:
    folder = workspace / MODELS[name]
    card = _json(folder / CARD_FILE) or {}
    info = {
        "path": str(MODELS[name]),
        "trained": (folder / WEIGHTS_FILE).is_file(),
        "params": card.get("params"),
        "metrics": _json(workspace / METRICS[name]),
    }
    if name == "siamese":
        evaluation = _json(workspace / EVALUATE) or {}
        test = {key: evaluation[key] for key in EVALUATE_HEADLINE if key in evaluation}
        # The model's own figures (pair AUC, source retrieval) sit under "model" beside its peers'.
        own = evaluation.get("model") if isinstance(evaluation.get("model"), dict) else None
        info["test_metrics"] = {**test, "model": own} if test else None
    return info


def stale_stages(workspace: Path) -> list[str] | None:
    """Stages `dvc status` reports as changed (empty: up to date); None when dvc cannot tell."""
    command = [sys.executable, "-m", "dvc", "status", "--json"]
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    try:
        result = subprocess.run(
            command, cwd=workspace, capture_output=True, text=True, env=env, timeout=DVC_STATUS_TIMEOUT_S
        )
        status = json.loads(result.stdout or "null")
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    if result.returncode != 0 or not isinstance(status, dict):
        return None
    # Keys are stage names, or "dvc.yaml:stage" in some layouts.
    return sorted(key.split(":")[-1] for key in status)
