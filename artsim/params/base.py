"""What every params block shares: the base model, the error, and the validators of keys
that appear in several blocks (processes, cache folders, inputs outside the repository)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

from artsim.core.cache_dirs import CacheKind, default_cache
from artsim.core.layout import DVC_OUTPUTS


def _at_least_one(value: int | str) -> int | str:
    if isinstance(value, int) and value < 1:
        raise ValueError("must be 'auto' or at least 1")
    return value


# Ranks to run a stage as (it relaunches itself under torchrun when more than one).
Processes = Annotated[int | Literal["auto"], AfterValidator(_at_least_one)]



def _outside_dvc_outputs(folder: Path) -> Path:
    """Refuse a cache folder inside a DVC output: it would be deleted before every run of the
    stage that writes the output. Relative paths are from the repository root, where stages run."""
    root = Path.cwd()
    where = (root / folder).resolve()
    for output in DVC_OUTPUTS:
        output_path = (root / output).resolve()
        if where == output_path or output_path in where.parents:
            raise ValueError(
                f"{folder} is inside {output}, a DVC output: it is deleted before each run of the stage that "
                f"writes {output}, so the cache would be lost every time; choose a folder outside "
                f"{', '.join(DVC_OUTPUTS)}")
    return folder


# A cache that must outlive the stage runs (generate.store, siamese.feature_cache, describe.cache).
CacheFolder = Annotated[Path, AfterValidator(_outside_dvc_outputs)]


def user_cache_when_null(kind: CacheKind) -> BeforeValidator:
    """null names the user's cache folder of `kind`, outside the workspace, so that queued and
    temporary experiments (run in a copy without git-ignored files) find it too."""
    return BeforeValidator(lambda value: default_cache(kind) if value is None else value)

# Marks a key that only says how to run (processes, workers, device, cache folders) and never
# what a stage produces: it is no params dep in dvc.yaml, so changing it reruns nothing.
# `run_only_keys()` lists them; tests/e2e/test_dvc_deps.py checks dvc.yaml against it both ways.
RUN_ONLY: dict[str, Any] = {"run_only": True}

# DVC deps cannot be null: a params key naming an input outside the repository (a dep in
# dvc.yaml by interpolation) names this placeholder, a small file in git, when unused.
NO_INPUT = Path("inputs/none")


def unused_input(value: Any) -> Any:
    return None if value is not None and Path(value) == NO_INPUT else value


class ParamsError(ValueError):
    """A params.yaml value is invalid; the message names the key and what is allowed."""


class Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

