"""Where each stage's outputs live in a workspace, relative to its root (stages run there;
the app joins them to the workspace it is given). dvc.yaml spells the same paths out, as DVC
needs; tests/test_layout.py and tests/test_cache_locations.py keep the two in step."""
from __future__ import annotations

from pathlib import Path

MANIFEST = "manifest.parquet"

INGESTED = Path("data/ingested")
GENERATED = Path("data/generated")
DESCRIPTORS = Path("data/descriptors")
DESCRIPTORS_TABLE = DESCRIPTORS / "descriptors.parquet"
PAIRS = Path("data/pairs")
PAIRS_TABLE = PAIRS / "pairs.parquet"
MODELS = {"finetune": Path("models/finetune"), "siamese": Path("models/siamese")}
# The siamese model's verdict thresholds (evaluate writes them; artsim.load reads them beside models/siamese).
VERDICT = Path("models/verdict.json")
# The search index of the originals (stage index; artsim search uses it when built with its model).
INDEX = Path("data/index")

# Stages that write metrics/<stage>.json and the folder metrics/<stage> (plots, dvclive curves).
METRIC_STAGES = ("ingest", "generate", "score", "finetune", "siamese", "evaluate")


def metrics_json(stage: str) -> Path:
    return Path("metrics") / f"{stage}.json"


def plots_dir(stage: str) -> Path:
    return Path("metrics") / stage


# Every output dvc.yaml declares (outs, metrics, plots). DVC deletes an output before its stage runs.
DVC_OUTPUTS = tuple(path.as_posix() for path in (
    INGESTED, GENERATED, DESCRIPTORS, PAIRS, *MODELS.values(), VERDICT, INDEX,
    *(p for stage in METRIC_STAGES for p in (plots_dir(stage), metrics_json(stage))), metrics_json("index"),
))
