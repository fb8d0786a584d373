"""What every stage entry point shares: reading params.yaml, logging, seeding."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

from artsim.config import Params, ParamsError, parse_params


def load_params(path: Path = Path("params.yaml")) -> Params:
    """Read and validate params.yaml; exit with the offending keys named if it is invalid."""
    with open(path, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle) or {}
    try:
        return parse_params(raw)
    except ParamsError as exc:
        sys.exit(str(exc))


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
