"""What every stage entry point shares: reading params.yaml, logging, seeding."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from dvclive import Live

from artsim.config import Params, ParamsError, parse_params
from artsim.distributed import Ranks, processes_wanted, torchrun_command, under_torchrun


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


@contextmanager
def main_rank_live(folder: Path, ranks: Ranks) -> Iterator[Live | None]:
    """A dvclive Live writing to `folder` on rank 0 (None on the other ranks).

    dvcyaml=None: dvc.yaml declares the plots itself and dvclive must never rewrite it.
    """
    if not ranks.is_main:
        yield None
        return
    with Live(dir=str(folder), dvcyaml=None, save_dvc_exp=False, report=None) as live:
        yield live


def relaunch_under_torchrun(processes: int | str, module: str, device: str = "auto") -> None:
    """Run `python -m module` again as several ranks when `processes` asks for more than one
    (and this process is not already a rank); exits with torchrun's status."""
    if under_torchrun():
        return
    count = processes_wanted(processes, device)
    if count > 1:
        logging.getLogger(module).info("relaunching as %d ranks under torchrun", count)
        sys.exit(subprocess.call(torchrun_command(count, module)))
