"""What every stage entry point shares: reading params.yaml, logging, JSON and dvclive summaries, relaunching
under torchrun."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from dvclive import Live
from ruamel.yaml import YAML

from artsim.core.distributed import Ranks, relaunch_as_ranks
from artsim.params import Params, ParamsError, parse_params

INTERPOLATION = re.compile(r"\$\{([^}]+)\}")  # dvc.yaml's ${key} templating


def load_params(path: Path = Path("params.yaml")) -> Params:
    """Read and validate params.yaml; exit with the offending keys named if it is invalid."""
    with open(path, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle) or {}
    try:
        return parse_params(raw)
    except ParamsError as exc:
        sys.exit(str(exc))


@dataclass(frozen=True)
class StageInputs:
    """What DVC watches of a stage: its deps (each ${key} filled from params.yaml, as DVC fills
    it), the values of its params keys, and the hash dvc.lock records for each dep that another
    stage outputs (`dvc repro` brings those up to date, and checks them, before it runs this one)."""

    deps: list[Path]
    params: dict[str, Any]
    recorded: dict[Path, str]

    @classmethod
    def of(cls, stage: str, root: Path = Path(".")) -> StageInputs | None:
        """None when the stage runs outside a DVC project (no dvc.yaml): nothing says what it depends on."""
        if not (root / "dvc.yaml").is_file():
            return None
        spec = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))["stages"][stage]
        values = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8")) or {}
        deps = [interpolate(dep, values) for dep in spec.get("deps", [])]
        outputs = recorded_outputs(root / "dvc.lock", skip=stage)
        return cls([root / dep for dep in deps], {key: params_value(values, key) for key in spec.get("params", [])},
                   {root / dep: outputs[dep] for dep in deps if dep in outputs})


def recorded_outputs(lock: Path, skip: str) -> dict[str, str]:
    """Each stage's outputs (but `skip`'s) as dvc.lock records them: path -> md5."""
    if not lock.is_file():
        return {}
    stages = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages", {})
    return {out["path"]: str(out.get("md5")) for name, entry in stages.items() if name != skip
            for out in entry.get("outs", []) if out.get("md5")}


def params_value(params: Mapping[str, Any], dotted: str) -> Any:
    tree: Any = params
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def interpolate(entry: str, params: Mapping[str, Any]) -> str:
    """`entry` with each ${dotted.key} replaced by that params value."""
    return INTERPOLATION.sub(lambda match: str(params_value(params, match.group(1))), entry)


def edit_params(path: Path, values: Mapping[str, Any]) -> None:
    """Set dotted keys (`seed`, `score.weights.color`; missing blocks are made) in a params file,
    written as `dvc exp run -S` writes it: a round trip through DVC's YAML library with its settings,
    so comments and every other line stay as they are (tests/test_params_file.py)."""
    round_trip = YAML()
    round_trip.default_flow_style = False
    tree = round_trip.load(path.read_text(encoding="utf-8")) or {}
    for dotted, value in values.items():
        *parents, leaf = dotted.split(".")
        block = tree
        for part in parents:
            block = block.setdefault(part, {})
        block[leaf] = value
    with open(path, "w", encoding="utf-8") as handle:
        round_trip.dump(tree, handle)


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


def write_stage_summary(path: Path, live_folder: Path, summary: dict[str, Any]) -> None:
    """The stage's headline metrics as plain JSON: the file dvc.yaml declares as its metrics.

    dvclive keeps the per-epoch curves (live_folder/plots); its own summary
    (live_folder/metrics.json) always adds `step` and the last epoch's figures beside the
    best epoch's, so it is removed: one summary, with the same keys on every run.
    """
    write_json(path, summary)
    (live_folder / "metrics.json").unlink(missing_ok=True)


def relaunch_under_torchrun(processes: int | str, module: str, device: str = "auto") -> None:
    """Run `python -m module` again as several ranks when `processes` asks for more than one
    (and this process is not already a rank); exits with torchrun's status (128 + N when
    stopped by signal N, which stops the ranks too)."""
    status = relaunch_as_ranks(processes, module, device)
    if status is not None:
        sys.exit(status)
