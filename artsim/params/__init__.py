"""Typed, validated parameters: one pydantic model per params.yaml block.

The library takes these objects (or plain typed arguments), never the YAML file:
reading params.yaml is the stages' job. Every model forbids unknown keys so that a
typo in params.yaml or in `dvc exp run -S` fails instead of being silently ignored.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, RootModel, ValidationError, WrapValidator,
                      field_validator, model_validator)

from artsim.core.cache_dirs import CacheKind, default_cache
from artsim.generate import REFINER, REFINER_REVISION, looks_like_hub_id


def _at_least_one(value: int | str) -> int | str:
    if isinstance(value, int) and value < 1:
        raise ValueError("must be 'auto' or at least 1")
    return value


# Ranks to run a stage as (it relaunches itself under torchrun when more than one).
Processes = Annotated[int | Literal["auto"], AfterValidator(_at_least_one)]

# Every output dvc.yaml declares (outs, metrics, plots), from the repository root; a test
# keeps this in step with dvc.yaml. DVC deletes an output before its stage runs.
DVC_OUTPUTS = (
    "data/ingested", "data/generated", "data/descriptors", "data/pairs", "models/finetune", "models/siamese",
    "metrics/ingest", "metrics/ingest.json", "metrics/generate", "metrics/generate.json", "metrics/score", "metrics/score.json", "metrics/finetune",
    "metrics/finetune.json", "metrics/siamese", "metrics/siamese.json", "metrics/evaluate", "metrics/evaluate.json",
)


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


def _user_cache_when_null(kind: CacheKind) -> BeforeValidator:
    """null names the user's cache folder of `kind`, outside the workspace, so that queued and
    temporary experiments (run in a copy without git-ignored files) find it too."""
    return BeforeValidator(lambda value: default_cache(kind) if value is None else value)

# Marks a key that only says how to run (processes, workers, device, cache folders) and never
# what a stage produces: it is no params dep in dvc.yaml, so changing it reruns nothing.
# `run_only_keys()` lists them; tests/test_dvc_deps.py checks dvc.yaml against it both ways.
RUN_ONLY: dict[str, Any] = {"run_only": True}

# DVC deps cannot be null: a params key naming an input outside the repository (a dep in
# dvc.yaml by interpolation) names this placeholder, a small file in git, when unused.
NO_INPUT = Path("inputs/none")


def _unused_input(value: Any) -> Any:
    return None if value is not None and Path(value) == NO_INPUT else value


class ParamsError(ValueError):
    """A params.yaml value is invalid; the message names the key and what is allowed."""


class Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IngestParams(Block):
    source: Path
    format: Literal["auto", "folder", "artgan", "hf_parquet"] = "auto"
    max_side: int = Field(512, ge=32, le=8192)
    min_side: int = Field(32, ge=1)
    max_pixels: int = Field(89_478_485, ge=1, description="decompression-bomb guard, checked before decoding")
    max_file_bytes: int = Field(268_435_456, ge=1, description="larger files are skipped from their size, unread")
    jpeg_quality: int = Field(95, ge=50, le=100)
    split: Literal["hash", "from_source"] = "hash"
    split_seed: int = Field(42, ge=0, description="which images land in which split (and subset); not the training seed")
    val_fraction: float = Field(0.15, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    max_images: int | None = Field(None, ge=1, description="deterministic, label-stratified subset; null = all")
    per_class: int | None = Field(None, ge=1, description="cap per label of stratify_by; null = no cap")
    stratify_by: Literal["style", "genre", "artist"] = "style"
    workers: int | None = Field(None, ge=1, description="decoding processes; null = all cores", json_schema_extra=RUN_ONLY)

    @model_validator(mode="after")
    def _leaves_a_train_split(self) -> "IngestParams":
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("val_fraction + test_fraction must be below 1 so that a train split remains")
        return self


class GenerateParams(Block):
    """Block `generate`: which backend makes the variants, with what, and where finished ones are kept.

    Keys that only say how to run (batch_size, device, processes, cpu_offload, store) do not
    change a variant: they are RUN_ONLY, no params deps, so changing one reruns nothing.
    Validators that look at other keys get pydantic's ValidationInfo as `info`: `info.data`
    holds the keys declared above their own, so the order of the fields matters.
    """

    backend: Literal["style_transfer", "sdxl", "import"] = "style_transfer"
    # None picks the backend's default (see DEFAULT_MODELS); validate_default fills it in.
    model: str | None = Field(None, validate_default=True)
    # A hub id names a moving repository; the commit pins it (ignored for a local folder,
    # which its content fingerprint keys instead).
    revision: str = Field(REFINER_REVISION, pattern=r"^\S+$", validate_default=True, description="hub commit (or branch/tag) of a hub model")
    strengths: list[float] = Field(default_factory=lambda: [0.25, 0.5, 0.75], min_length=1)
    max_side: int = Field(256, ge=32, le=4096, description="style_transfer: long side of the variants")
    jpeg_quality: int = Field(95, ge=50, le=100)
    store: Annotated[CacheFolder, _user_cache_when_null("variants")] = Field(
        None, validate_default=True, description="finished variants, outside every DVC output; null = the user cache", json_schema_extra=RUN_ONLY)
    # sdxl
    prompt: str = "{title}, {genre} by {artist}, {style}, {year}"
    negative_prompt: str = ""
    steps: int = Field(25, ge=1, le=1000)
    guidance_scale: float = Field(7.5, ge=0.0, le=50.0)
    aesthetic_score: float = Field(6.0, ge=0.0, le=10.0)
    negative_aesthetic_score: float = Field(2.5, ge=0.0, le=10.0)
    resolution: int = Field(1024, ge=16, le=4096, description="sdxl: long side, rounded to the model's multiple")
    vae: str | None = None
    # Local folders are named by these keys, DVC deps in dvc.yaml (changing a file reruns the
    # stage); each stands for `model` / `vae` (see _local_folders_stand_for_models).
    model_dir: Annotated[Path | None, BeforeValidator(_unused_input)] = Field(None, description="a save_pretrained pipeline folder")
    vae_dir: Annotated[Path | None, BeforeValidator(_unused_input)] = Field(None, description="a save_pretrained VAE folder")
    batch_size: int = Field(4, ge=1, le=256, json_schema_extra=RUN_ONLY)
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", json_schema_extra=RUN_ONLY)
    dtype: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    cpu_offload: bool = Field(False, json_schema_extra=RUN_ONLY)
    processes: Processes = Field(1, description="ranks on this machine; 'auto' = one per visible GPU", json_schema_extra=RUN_ONLY)
    # import
    import_dir: Annotated[Path | None, BeforeValidator(_unused_input)] = Field(None, validate_default=True)
    import_template: str = Field("{style}/{stem}_resize768_generated.jpg", validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _local_folders_stand_for_models(cls, raw: Any) -> Any:
        # Before the field validators: `model` must hold the folder when its default is filled in.
        if not isinstance(raw, dict):
            return raw
        raw = dict(raw)
        for folder_key, key in (("model_dir", "model"), ("vae_dir", "vae")):
            folder = _unused_input(raw.get(folder_key))
            if folder is None:
                continue
            if raw.get(key) is not None:
                raise ValueError(f"set generate.{key} (a hub id) or generate.{folder_key} (a local folder), not both")
            if not Path(folder).is_dir():
                raise ValueError(f"generate.{folder_key}: {folder} is not a folder")
            raw[key] = str(folder)
        return raw

    @field_validator("model")
    @classmethod
    def _model_fits_backend(cls, value: str | None, info: Any) -> str:
        from artsim.generate import DEFAULT_MODELS

        backend = info.data.get("backend", "style_transfer")
        if value is None:
            return DEFAULT_MODELS[backend]
        if backend == "style_transfer" and value != DEFAULT_MODELS["style_transfer"]:
            raise ValueError(f"backend style_transfer has the one model {DEFAULT_MODELS['style_transfer']!r}")
        if backend == "sdxl" and value == DEFAULT_MODELS["style_transfer"]:
            raise ValueError(f"backend sdxl needs a diffusers model: a hub id such as {DEFAULT_MODELS['sdxl']!r} or a folder written by save_pretrained (null = that default)")
        return value

    @field_validator("revision")
    @classmethod
    def _revision_fits_model(cls, value: str, info: Any) -> str:
        model = info.data.get("model")
        if info.data.get("backend") == "sdxl" and value == REFINER_REVISION and model != REFINER and looks_like_hub_id(model):
            raise ValueError(f"the default is the commit of {REFINER}; give the commit (or main) of {model}")
        return value

    @field_validator("strengths")
    @classmethod
    def _strengths_in_unit_interval(cls, values: list[float]) -> list[float]:
        if any(not 0.0 < v <= 1.0 for v in values):
            raise ValueError("every strength must be in (0, 1]")
        if len(set(values)) != len(values):
            raise ValueError("strengths must not repeat")
        return values

    @field_validator("prompt", "negative_prompt")
    @classmethod
    def _prompt_fields_known(cls, value: str) -> str:
        from artsim.generate.prompts import PROMPT_FIELDS, check_template

        check_template(value, PROMPT_FIELDS)
        return value

    @field_validator("steps")
    @classmethod
    def _every_strength_gets_a_step(cls, value: int, info: Any) -> int:
        # img2img runs int(steps * strength) denoising steps; zero steps is an error in diffusers.
        too_weak = [s for s in info.data.get("strengths", []) if int(value * s) < 1]
        if too_weak:
            weakest = min(too_weak)
            needed = next(n for n in range(value, 100_000) if int(n * weakest) >= 1)
            raise ValueError(f"steps={value} gives no denoising step at strength {weakest}; need steps >= {needed}")
        return value

    @field_validator("dtype")
    @classmethod
    def _half_precision_needs_a_gpu(cls, value: str, info: Any) -> str:
        if value in ("fp16", "bf16") and info.data.get("device") == "cpu":
            raise ValueError(f"{value} needs a GPU; use fp32 (or auto) with device cpu")
        return value

    @field_validator("cpu_offload")
    @classmethod
    def _offload_needs_a_gpu(cls, value: bool, info: Any) -> bool:
        if value and info.data.get("device") == "cpu":
            raise ValueError("model CPU offload moves models to a GPU when used; it needs device auto or cuda")
        return value

    @field_validator("import_template")
    @classmethod
    def _import_fields_known(cls, value: str, info: Any) -> str:
        from artsim.generate.prompts import check_import_template

        fields = check_import_template(value)
        if info.data.get("backend") == "import" and "strength" not in fields and len(info.data.get("strengths", [])) > 1:
            raise ValueError("with several strengths the template must tell them apart with {strength}")
        return value

    @field_validator("import_dir")
    @classmethod
    def _import_has_a_folder(cls, value: Path | None, info: Any) -> Path | None:
        if info.data.get("backend") == "import" and (value is None or not value.is_dir()):
            raise ValueError("backend import needs an existing folder of generated images")
        return value


class DescribeParams(Block):
    size: int = Field(256, ge=32, le=2048, description="long side the image is resized to before describing")
    hsv_bins: tuple[int, int, int] = (16, 4, 4)
    haralick_levels: int = Field(32, ge=2, le=256)
    canny_low: float = Field(50.0, ge=0.0)
    canny_high: float = Field(150.0, ge=0.0)
    edge_grid: int = Field(8, ge=1, le=64)
    # Run-only, and left out of model_dump: descriptor_score.json and model cards record what
    # decides a descriptor, not where this machine cached it.
    workers: int | None = Field(None, ge=1, exclude=True, description="describing processes; null = all cores",
                                json_schema_extra=RUN_ONLY)
    cache: Annotated[CacheFolder, _user_cache_when_null("descriptors")] = Field(
        None, validate_default=True, exclude=True,
        description="descriptors per image and params, outside every DVC output; null = the user cache",
        json_schema_extra=RUN_ONLY)

    @field_validator("hsv_bins")
    @classmethod
    def _bins_positive(cls, bins: tuple[int, int, int]) -> tuple[int, int, int]:
        if any(b < 1 or b > 256 for b in bins):
            raise ValueError("each HSV bin count must be in 1..256")
        return bins

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> "DescribeParams":
        if self.canny_low > self.canny_high:
            raise ValueError("canny_low must not exceed canny_high")
        return self


# The descriptor candidates of artsim.describe.registry' registry, in its order (it checks that they
# agree at import); a copy here so that params validate without importing OpenCV.
CANDIDATE_NAMES = ("color", "texture", "edges", "lab", "lbp", "orientation", "phash", "layout")
# The default target: the descriptor study's `fit` on the embedded sample's train pairs, rounded
# to two decimals (sums to 1; lbp's 0.005 rounds away). README, "The descriptor study".
DEFAULT_SCORE_WEIGHTS = {"layout": 0.34, "phash": 0.21, "edges": 0.12, "orientation": 0.11, "lab": 0.09,
                         "color": 0.07, "texture": 0.06}
# The three-descriptor score (colour, texture, edges), the documented alternative; evaluate and
# the score report show these three per descriptor beside the weighted score.
CLASSIC_SCORE_WEIGHTS = {"color": 0.4, "texture": 0.3, "edges": 0.3}
Weight = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


class ScoreWeights(RootModel[dict[str, Weight]]):
    """Weight of each descriptor candidate in the score: exactly the named ones (others weigh 0).

    `ScoreWeights(color=1.0, lbp=0.5)` or `ScoreWeights({"color": 1.0})`; no argument: the default."""

    model_config = ConfigDict(frozen=True)
    root: dict[str, Weight] = Field(default_factory=lambda: dict(DEFAULT_SCORE_WEIGHTS))

    @model_validator(mode="after")
    def _known_and_not_all_zero(self) -> "ScoreWeights":
        unknown = sorted(set(self.root) - set(CANDIDATE_NAMES))
        if unknown:
            raise ValueError(f"unknown descriptor {', '.join(map(repr, unknown))}; allowed: {', '.join(CANDIDATE_NAMES)}")
        if sum(self.root.values()) <= 0:
            raise ValueError(f"at least one weight must be positive (descriptors: {', '.join(CANDIDATE_NAMES)})")
        return self

    def as_dict(self) -> dict[str, float]:
        return dict(self.root)


def _fit_or_weights(value: Any, handler: Any) -> "ScoreWeights | Literal['fit']":
    # Validated by hand rather than as a union, so that an error names score.weights.<name>, not a union member.
    if isinstance(value, str):
        if value == "fit":
            return value
        raise ValueError(f"must be 'fit' or a mapping of descriptor to weight ({', '.join(CANDIDATE_NAMES)})")
    return value if isinstance(value, ScoreWeights) else ScoreWeights.model_validate(value)


class ScoreParams(Block):
    weights: Annotated[ScoreWeights | Literal["fit"], WrapValidator(_fit_or_weights)] = Field(
        default_factory=ScoreWeights,
        description="descriptor -> weight, or 'fit': learned on the train pairs (artsim.score.fit)")
    negatives: int = Field(1, ge=0, le=100, description="negative pairs per positive pair")
    study_queries: int = Field(2000, ge=1, description="held-out (val/test) variants whose source the descriptor study looks for among all originals")


Precision = Literal["auto", "fp32", "bf16", "fp16"]
# A ResNet trunk's stages from the input up; `siamese.train_layers` names a top run of them.
TRUNK_STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")


class TrainingRun(Block):
    """How a training stage runs (not what it learns): on GPUs only, and never on a CPU."""

    precision: Precision = Field("fp32", description="autocast on GPU; auto = bf16 where supported, else fp16; CPU runs stay fp32")
    channels_last: bool = False
    loader_workers: int = Field(0, ge=0, le=64, description="DataLoader worker processes per rank", json_schema_extra=RUN_ONLY)
    processes: Processes = Field(1, description="ranks on this machine (relaunch under torchrun); 'auto' = one per GPU", json_schema_extra=RUN_ONLY)


class LearningRecipe(Block):
    """How the weights move, in both training stages (artsim.learn.training.follow_recipe).

    On a few images, full-size first steps, a last epoch still at full rate and an epoch
    picked by a handful of validation images turn float rounding, which differs between
    CPUs, into different models; bench/seeds.py measures how close these keep two machines.
    """

    warmup: float = Field(0.25, ge=0.0, lt=1.0, description="fraction of the steps over which the lr rises linearly, before a cosine decay")
    grad_clip: float | None = Field(1.0, gt=0.0, description="clip the gradient norm to this before each step; null = no clipping")
    select_epoch: Literal["last", "best_val"] = Field(
        "last", description="keep the last epoch's weights, or those of the epoch that did best on val")


class FinetuneParams(TrainingRun, LearningRecipe):
    weights: str = "none"
    # A state dict file is named here, a DVC dep in dvc.yaml; it stands for `weights`.
    weights_file: Annotated[Path | None, BeforeValidator(_unused_input)] = Field(None, description="a state dict file to start from")

    @model_validator(mode="before")
    @classmethod
    def _weights_file_stands_for_weights(cls, raw: Any) -> Any:
        if not isinstance(raw, dict) or _unused_input(raw.get("weights_file")) is None:
            return raw
        if raw.get("weights", "none") != "none":
            raise ValueError("set finetune.weights (none | imagenet) or finetune.weights_file (a state dict file), not both")
        return {**raw, "weights": str(raw["weights_file"])}
    label: Literal["style", "genre"] = "style"
    min_class_size: int = Field(2, ge=1, description="classes with fewer train images are merged into 'other'")
    image_size: int = Field(96, ge=32, le=1024)
    epochs: int = Field(8, ge=1)
    batch_size: int = Field(16, ge=2, description="images per optimiser step, over all ranks (BatchNorm needs two)")
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)

    @field_validator("weights")
    @classmethod
    def _weights_known(cls, value: str) -> str:
        if value in ("none", "imagenet"):
            return value
        if not Path(value).is_file():
            raise ValueError(f"must be 'none', 'imagenet' or the path of an existing state dict file, got {value!r}")
        return value


class SiameseParams(TrainingRun, LearningRecipe):
    image_size: int = Field(64, ge=32, le=1024)
    # Everything below the lowest trained stage is frozen, and its features are computed
    # once per unique image and cached in feature_cache.
    train_layers: Literal["all"] | list[Literal["stem", "layer1", "layer2", "layer3", "layer4"]] = ["layer4"]
    feature_cache: Annotated[CacheFolder, _user_cache_when_null("features")] = Field(
        None, validate_default=True, description="frozen-trunk features by image and weights, outside every DVC output; null = the user cache",
        json_schema_extra=RUN_ONLY)
    epochs: int = Field(8, ge=1)
    batch_size: int = Field(16, ge=1, description="pairs per optimiser step, over all ranks")
    lr: float = Field(3e-4, gt=0.0)
    trunk_lr_scale: float = Field(0.1, gt=0.0, le=1.0, description="the trained trunk stages learn at lr x this")
    weight_decay: float = Field(1e-4, ge=0.0)
    head_hidden: int = Field(256, ge=1)
    # Both off by default: on the embedded sample they cost the model (README, "Training for
    # retrieval and robustness"); they are there for collections where MSE alone ranks badly.
    rank_weight: float = Field(0.0, ge=0.0, description="weight of the in-batch ranking term beside the MSE (artsim.siamese.ranking); 0 = MSE only")
    augment_copies: int = Field(0, ge=0, le=16, description="altered copies of each train variant (artsim.learn.augment); 0 = none")

    @field_validator("train_layers")
    @classmethod
    def _top_run_of_stages(cls, value: str | list[str]) -> str | list[str]:
        if value == "all":
            return value
        indices = sorted(TRUNK_STAGES.index(name) for name in value)
        if len(set(indices)) != len(indices) or (indices and indices != list(range(indices[0], len(TRUNK_STAGES)))):
            raise ValueError(
                "must be 'all' or a top run of consecutive trunk stages ending at layer4, e.g. [layer4] or "
                f"[layer3, layer4] ([] trains the head only); stages: {', '.join(TRUNK_STAGES)}; got {value!r}"
            )
        return [TRUNK_STAGES[i] for i in indices]


class EvaluateParams(Block):
    batch_size: int = Field(32, ge=1, json_schema_extra=RUN_ONLY)
    loader_workers: int = Field(0, ge=0, le=64, description="DataLoader workers for embedding the test images", json_schema_extra=RUN_ONLY)


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


# Keys that take a hub id / keyword or, in the library, a local path; from params.yaml a local
# path goes in the key beside it, a DVC dep, so that DVC reruns the stage when it changes.
LOCAL_PATH_KEYS = {("generate", "model"): "model_dir", ("generate", "vae"): "vae_dir", ("finetune", "weights"): "weights_file"}


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
        raise ParamsError(_describe_errors(exc)) from None


def _describe_errors(exc: ValidationError) -> str:
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
