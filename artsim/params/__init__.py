"""Typed, validated parameters: one pydantic model per params.yaml block.

The library takes these objects (or plain typed arguments), never the YAML file:
reading params.yaml is the stages' job. Every model forbids unknown keys so that a
typo in params.yaml or in `dvc exp run -S` fails instead of being silently ignored.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from artsim.params.base import DVC_OUTPUTS, NO_INPUT, RUN_ONLY, Block, CacheFolder, ParamsError, Processes
from artsim.params.describe import DescribeParams
from artsim.params.evaluate import EvaluateParams
from artsim.params.finetune import FinetuneParams
from artsim.params.generate import DEFAULT_MODELS, REFINER, REFINER_REVISION, GenerateParams
from artsim.params.index import IndexParams
from artsim.params.ingest import IngestParams
from artsim.params.report import ReportParams
from artsim.params.score import (
    CLASSIC_SCORE_WEIGHTS,
    DEFAULT_SCORE_WEIGHTS,
    DESCRIPTOR_NAMES,
    ScoreParams,
    ScoreWeights,
)
from artsim.params.siamese import SiameseParams
from artsim.params.training import TRUNK_STAGES, LearningRecipe, Precision, TrainingRun

__all__ = [
    "Block",
    "ParamsError",
    "RUN_ONLY",
    "NO_INPUT",
    "DVC_OUTPUTS",
    "CacheFolder",
    "Processes",
    "IngestParams",
    "GenerateParams",
    "DEFAULT_MODELS",
    "REFINER",
    "REFINER_REVISION",
    "DescribeParams",
    "ScoreParams",
    "ScoreWeights",
    "DESCRIPTOR_NAMES",
    "CLASSIC_SCORE_WEIGHTS",
    "DEFAULT_SCORE_WEIGHTS",
    "TrainingRun",
    "LearningRecipe",
    "Precision",
    "TRUNK_STAGES",
    "FinetuneParams",
    "SiameseParams",
    "EvaluateParams",
    "IndexParams",
    "ReportParams",
    "Params",
    "LOCAL_PATH_KEYS",
    "parse_params",
    "describe_errors",
    "result_params",
    "run_only_keys",
    "result_blocks",
]


class Params(Block):
    seed: int = Field(42, ge=0)
    ingest: IngestParams
    # Validated per parse, not built at import: their cache folders follow $ARTSIM_CACHE as it is then.
    generate: GenerateParams = Field(default_factory=dict, validate_default=True)
    describe: DescribeParams = Field(default_factory=dict, validate_default=True)
    score: ScoreParams = ScoreParams()
    finetune: FinetuneParams = FinetuneParams()
    siamese: SiameseParams = Field(default_factory=dict, validate_default=True)
    evaluate: EvaluateParams = EvaluateParams()
    index: IndexParams = IndexParams()
    report: ReportParams = ReportParams()


# Keys that take a hub id / keyword or, in the library, a local path; from params.yaml a local
# path goes in the key beside it, a DVC dep, so that DVC reruns the stage when it changes.
LOCAL_PATH_KEYS = {
    ("generate", "model"): "model_dir",
    ("generate", "vae"): "vae_dir",
    ("finetune", "weights"): "weights_file",
}


def _local_paths_are_deps(raw: dict[str, Any]) -> None:
    for (block, key), instead in LOCAL_PATH_KEYS.items():
        value = (raw.get(block) or {}).get(key)
        if isinstance(value, str) and value not in ("none", "imagenet") and Path(value).exists():
            raise ParamsError(
                f"invalid params.yaml:\n  {block}.{key}: {value!r} is a local path; name it in {block}.{instead} "
                f"instead, a DVC dep of the stage, so that changing it reruns the stage")


def parse_params(raw: dict[str, Any]) -> Params:
    """Validate a params mapping; on failure raise ParamsError naming each bad key."""
    _local_paths_are_deps(raw)
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(describe_errors(exc)) from None


def describe_errors(exc: ValidationError) -> str:
    lines = ["invalid params.yaml:"]
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "<root>"
        got = error.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  {key}: {error['msg']}{shown}")
    return "\n".join(lines)


def result_params(block: BaseModel) -> dict[str, Any]:
    """A block's params without its run-only keys: what decided a result (for model cards),
    free of worker counts and machine-specific cache folders."""
    run_only = run_only_keys(type(block))
    return {key: value for key, value in block.model_dump(mode="json").items() if key not in run_only}


def result_blocks(params: Params) -> dict[str, dict[str, Any]]:
    """Each block's params without its run-only keys, by block name (the stage of the same name):
    what stage params writes, one file per block, so that a file changes only when a value that
    decides its stage's results does (top-level keys such as seed are stages' params deps instead)."""
    return {name: result_params(value) for name in type(params).model_fields
            if isinstance(value := getattr(params, name), BaseModel)}


def run_only_keys(model: type[BaseModel] = Params, prefix: str = "") -> set[str]:
    """The dotted params keys marked RUN_ONLY (e.g. "generate.device"), over nested blocks."""
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if extra.get("run_only"):
            keys.add(prefix + name)
        elif isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            keys |= run_only_keys(field.annotation, f"{prefix}{name}.")
    return keys
