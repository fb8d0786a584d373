"""End to end: `dvc repro` of the embedded default in a throw-away copy of the repository."""
import json
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import POISON
from tests.conftest import run_in as run
from tests.support.helpers import REPO_ROOT, stages_run

pytestmark = pytest.mark.e2e

EVALUATE_KEYS = {"mse", "mae", "rmse", "r2", "pearson", "spearman", "baseline_mse", "baseline_mae"}
ALL_STAGES = {"ingest", "generate", "describe", "score", "finetune", "siamese", "evaluate", "index", "report"}
# The check of params.yaml (stages/params.py): its output is in git, so a clone reruns it only when
# dvc.lock lags behind its code; any change of params.yaml reruns it (seconds).
CHECK = "params"


@pytest.fixture(scope="module")
def clone(reproduced_workspace) -> Path:
    """A fresh clone (tracked files, no DVC cache) after its first `dvc repro`: conftest's
    session-wide reproduced_workspace, shared with the other e2e modules."""
    return reproduced_workspace.path


@pytest.fixture(scope="module")
def first_repro(reproduced_workspace) -> subprocess.CompletedProcess:
    """That first `dvc repro`, run with metrics/evaluate.json poisoned (see reproduced_workspace)."""
    return reproduced_workspace.first_repro


def stages_unchanged(result: subprocess.CompletedProcess) -> set[str]:
    return set(re.findall(r"Stage '([\w-]+)' didn't change, skipping", result.stdout + result.stderr))


def test_repro_runs_every_stage_and_writes_the_evaluation(clone, first_repro):
    # A clone has no DVC cache, so every stage with a cached output must run; evaluate runs
    # because its committed report was poisoned (see first_repro).
    assert stages_run(first_repro) - {CHECK} == ALL_STAGES
    metrics = json.loads((clone / "metrics" / "evaluate.json").read_text())
    assert EVALUATE_KEYS <= set(metrics) and not set(POISON) & set(metrics)
    assert all(isinstance(metrics[key], float) for key in ("mse", "mae", "baseline_mse"))
    # The figures are this run's: they count the pairs and paintings the clone just built.
    pairs = pd.read_parquet(clone / "data" / "pairs" / "pairs.parquet")
    test_pairs = pairs[pairs["split"] == "test"]
    assert metrics["n_test_pairs"] + metrics["n_skipped_pairs"] == len(test_pairs)
    assert metrics["n_queries"] == test_pairs["positive"].sum()
    assert metrics["n_candidates"] == len(pd.read_parquet(clone / "data" / "ingested" / "manifest.parquet"))
    predictions = pd.read_csv(clone / "metrics" / "evaluate" / "predictions.csv")
    assert len(predictions) == metrics["n_test_pairs"]
    assert set(predictions["pair_id"]) <= set(test_pairs["pair_id"])
    assert (clone / "models" / "siamese" / "model.safetensors").is_file()


def leaves(report: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in report.items():
        flat.update(leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return flat


def test_metrics_files_are_headlines_that_name_no_data(clone, first_repro):
    """What `dvc exp show` lists: every declared metrics file exists, is short, and has no key
    named after a style or a strength of the data (those breakdowns are plot files)."""
    declared = yaml.safe_load((clone / "dvc.yaml").read_text())
    styles = set(pd.read_parquet(clone / "data" / "ingested" / "manifest.parquet")["style"].dropna().astype(str))
    strengths = {f"{s:g}" for s in pd.read_parquet(clone / "data" / "generated" / "manifest.parquet")["strength"]}
    for name in declared["metrics"]:
        keys = leaves(json.loads((clone / name).read_text()))
        # evaluate.json also holds, per scorer, the verdict thresholds and the transformed set's
        # figures (fixed keys, issue 17): 6 scorers x (6 figures + 8 threshold keys: two thresholds, the interval on
        # each precision, the pairs) + 5 x 3 transformed figures + fused's calibration (9) + regression and counts.
        assert len(keys) <= (133 if name == "metrics/evaluate.json" else 50), name
        assert not [k for k in keys for word in styles | strengths | {"step"} if f".{word}." in f".{k}."], name
    for plot in declared["plots"]:
        spec = next(iter(plot.values())) if isinstance(plot, dict) else {}
        for path in (spec.get("y") or {plot if isinstance(plot, str) else next(iter(plot)): None}):
            assert (clone / path).exists(), path


# bench/seeds.py measures, per headline metric of metrics/evaluate.json, how far runs land
# apart across kernel settings (a stand-in for another machine) and seeds.
REPRODUCIBILITY_TOLERANCE = REPO_ROOT / "tests" / "support" / "reproducibility_tolerance.json"


def dotted(mapping: dict, key: str):
    """mapping["a"]["b"] for "a.b"; None when a part is missing."""
    for part in key.split("."):
        mapping = mapping.get(part) if isinstance(mapping, dict) else None
    return mapping


# Before any test that changes params in the clone: it compares the default's metrics.
def test_reproduced_evaluation_matches_the_committed_one_within_the_measured_tolerance(clone, first_repro):
    tolerance = json.loads(REPRODUCIBILITY_TOLERANCE.read_text(encoding="utf-8"))["evaluate"]
    committed = json.loads((REPO_ROOT / "metrics" / "evaluate.json").read_text(encoding="utf-8"))
    reproduced = json.loads((clone / "metrics" / "evaluate.json").read_text(encoding="utf-8"))
    compared = {key: (dotted(committed, key), dotted(reproduced, key), spec["tolerance"])
                for key, spec in tolerance.items()
                if dotted(committed, key) is not None and dotted(reproduced, key) is not None}
    assert compared, "no headline metric in both the committed and the reproduced metrics/evaluate.json"
    apart = {key: f"committed {a:.4f}, reproduced {b:.4f}, tolerance {tol:.4f}"
             for key, (a, b, tol) in compared.items() if abs(a - b) > tol}
    assert not apart, f"reproduced metrics land further from the committed ones than bench/seeds.py measured: {apart}"


def test_second_repro_runs_nothing(clone, first_repro):
    assert stages_run(run(["dvc", "repro"], clone)) == set()
    assert "up to date" in run(["dvc", "status"], clone).stdout
