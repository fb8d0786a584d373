"""Where each stage's outputs live in a workspace, relative to its root (stages run there;
the app joins them to the workspace it is given). dvc.yaml spells the same paths out, as DVC
needs; tests/test_layout.py and tests/params/test_base.py keep the two in step."""
from __future__ import annotations

from pathlib import Path

MANIFEST = "manifest.parquet"

# Stage params: each params block's values that decide results, one JSON file per block, written once
# the whole of params.yaml is valid. Every other stage depends on its block's file, so the check runs
# before DVC removes any output; the folder persists (DVC never deletes it), so a failed check loses nothing.
VALIDATED_PARAMS = Path("data/params")

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
# The technical report of the run (stage report): a DVC-cached output under data/, not a git-committed
# metrics file, because it inlines its images (megabytes per experiment) and each experiment has its own.
REPORT = Path("data/report")
REPORT_HTML = REPORT / "report.html"
REPORT_PDF = REPORT / "report.pdf"

# Stages that write metrics/<stage>.json and the folder metrics/<stage> (plots, dvclive curves).
METRIC_STAGES = ("ingest", "generate", "score", "finetune", "siamese", "evaluate")


def validated_params(block: str) -> Path:
    return VALIDATED_PARAMS / f"{block}.json"


def metrics_json(stage: str) -> Path:
    return Path("metrics") / f"{stage}.json"


def plots_dir(stage: str) -> Path:
    return Path("metrics") / stage


# The only DVC metrics file (what `dvc exp show` lists): a few headline figures of evaluate.
HEADLINE = metrics_json("headline")


# Every output dvc.yaml declares (outs, metrics, plots). DVC deletes an output before its stage runs.
DVC_OUTPUTS = tuple(path.as_posix() for path in (
    VALIDATED_PARAMS, INGESTED, GENERATED, DESCRIPTORS, PAIRS, *MODELS.values(), VERDICT, INDEX, REPORT,
    *(p for stage in METRIC_STAGES for p in (plots_dir(stage), metrics_json(stage))), metrics_json("index"), HEADLINE,
))
