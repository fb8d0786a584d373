"""End to end: `dvc repro` of the embedded default in a throw-away copy of the repository."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import copy_worktree

pytestmark = pytest.mark.e2e

EVALUATE_KEYS = {"mse", "mae", "rmse", "r2", "pearson", "spearman", "baseline_mse", "baseline_mae"}
ALL_STAGES = {"ingest", "generate", "describe", "score", "finetune", "siamese", "evaluate"}


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    # dvc runs `python -m stages.X` through the shell: it must find this interpreter first.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def stages_run(result: subprocess.CompletedProcess) -> set[str]:
    return set(re.findall(r"Running stage '([\w-]+)'", result.stdout + result.stderr))


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """What a fresh clone would hold: the files git tracks or would track, and no DVC cache."""
    target = tmp_path_factory.mktemp("clone")
    copy_worktree(target)
    run(["git", "init", "-q"], target)
    run(["git", "add", "-A"], target)
    run(["git", "commit", "-q", "-m", "snapshot"], target)
    return target


@pytest.fixture(scope="module")
def first_repro(clone: Path) -> subprocess.CompletedProcess:
    return run(["dvc", "repro"], clone)


def stages_unchanged(result: subprocess.CompletedProcess) -> set[str]:
    return set(re.findall(r"Stage '([\w-]+)' didn't change, skipping", result.stdout + result.stderr))


def test_repro_runs_every_stage_and_writes_the_evaluation(clone, first_repro):
    # A clone has no DVC cache, so every stage with a cached output must run; evaluate's
    # outputs are in git and may already match its rebuilt (deterministic) inputs.
    assert ALL_STAGES - {"evaluate"} <= stages_run(first_repro)
    assert stages_run(first_repro) | stages_unchanged(first_repro) == ALL_STAGES
    metrics = json.loads((clone / "metrics" / "evaluate.json").read_text())
    assert EVALUATE_KEYS <= set(metrics)
    assert all(isinstance(metrics[key], float) for key in ("mse", "mae", "baseline_mse"))
    assert (clone / "metrics" / "evaluate" / "predictions.csv").is_file()
    assert (clone / "models" / "siamese" / "model.safetensors").is_file()


def test_second_repro_runs_nothing(clone, first_repro):
    assert stages_run(run(["dvc", "repro"], clone)) == set()
    assert "up to date" in run(["dvc", "status"], clone).stdout


def test_changing_a_score_weight_reruns_only_what_depends_on_it(clone, first_repro):
    params_file = clone / "params.yaml"
    params = yaml.safe_load(params_file.read_text())
    params["score"]["weights"]["color"] = 0.7
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    assert stages_run(run(["dvc", "repro"], clone)) == {"score", "siamese", "evaluate"}
