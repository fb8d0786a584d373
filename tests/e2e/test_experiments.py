"""A queued experiment (`dvc exp run --queue`, run by `dvc queue start` in a fresh copy of the
workspace without its git-ignored files) finds the variant store that `dvc repro` filled and puts
the features it computes where the next run finds them: both live in the user cache
($ARTSIM_CACHE), not in the workspace. One experiment: each runs several stages (minutes), and
what a second one would find in the feature cache is tests/learn/test_feature_cache.py's."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.support.helpers import stages_in

pytestmark = pytest.mark.e2e

# A queued run rerunning most stages: minutes on a busy machine.
QUEUE_TIMEOUT_S = 15 * 60
POLL_S = 5
EXPERIMENT = "color-06-one-strength"
# The session's workspace is shared with other e2e modules: queueing must leave it as it was.
WORKSPACE_FILES = ("params.yaml", "dvc.lock", "metrics/evaluate.json")
# Frozen layers below layer4: their features go to the user cache.
CACHED_TRUNK = "siamese.train_layers=[layer4]"
# What is checked (variants and features found in the user cache, the runs listed with their metrics)
# does not depend on how long the siamese trains: one epoch, not the default's eight.
ONE_EPOCH = "siamese.epochs=1"
# Nor on the report's PDF, its slowest part (WeasyPrint), which no test here reads.
NO_PDF = "report.pdf=false"
# Nor on the image size the siamese trains, evaluates and indexes at (the smallest allowed: a quarter of the
# default's pixels), or on how many held-out variants evaluate alters and SSIM ranks (one): the same stages
# rerun, the variants come from the store alike, and every feature the siamese computes is new alike.
SMALL_IMAGES = "siamese.image_size=32"
ONE_SAMPLED_QUERY = "evaluate.max_sampled_queries=1"


def environment() -> dict[str, str]:
    env = dict(os.environ)  # $ARTSIM_CACHE from tests/conftest.py: the queue worker inherits it
    # dvc runs `python -m stages.X` through the shell: it must find this interpreter first.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        DVC_NO_ANALYTICS="1",
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@t",
    )
    return env


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=environment(), capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def queued(reproduced_workspace, user_cache: Path) -> dict:
    """One experiment queued in the session's reproduced workspace (its `dvc repro` filled the user
    cache), changing score.weights.color and keeping only the first strength (which reruns generate
    on variants the store already holds), training layer4 only (its frozen features go to the
    feature cache; `train_layers: all`, the default, caches none), run by `dvc queue start`."""
    repo = reproduced_workspace.path
    # As a user would before queueing: a queued experiment starts from a commit plus the tracked
    # changes, so untracked outputs (new metrics files) would make their stages rerun.
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "--allow-empty", "-m", "reproduced"], repo)
    before = {name: (repo / name).read_text() for name in WORKSPACE_FILES}
    features_before = set((user_cache / "features").rglob("*.npy"))
    strengths = yaml.safe_load((repo / "params.yaml").read_text())["generate"]["strengths"]
    assert len(strengths) > 1, "this test drops strengths: the workspace needs several"
    values = ["score.weights.color=0.6", f"generate.strengths=[{strengths[0]}]", CACHED_TRUNK, ONE_EPOCH, NO_PDF,
              SMALL_IMAGES, ONE_SAMPLED_QUERY]
    run(["dvc", "exp", "run", "--queue", "-n", EXPERIMENT, *(part for value in values for part in ("-S", value))], repo)
    run(["dvc", "queue", "start"], repo)
    try:
        status = wait_for_queue(repo)
    finally:
        subprocess.run(["dvc", "queue", "stop"], cwd=repo, env=environment(), capture_output=True)
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    return {
        "before": before,
        "after": {name: (repo / name).read_text() for name in WORKSPACE_FILES},
        "status": status,
        "experiments": experiments_by_name(shown),
        "log": run(["dvc", "queue", "logs", EXPERIMENT], repo).stdout,
        "new_features": set((user_cache / "features").rglob("*.npy")) - features_before,
    }


def wait_for_queue(repo: Path) -> str:
    """`dvc queue status` once the experiment is neither queued nor running (bounded by QUEUE_TIMEOUT_S)."""
    deadline = time.monotonic() + QUEUE_TIMEOUT_S
    while True:
        status = run(["dvc", "queue", "status"], repo).stdout
        tasks = [line for line in status.splitlines() if EXPERIMENT in line]
        if tasks and not any(re.search(r"\b(Queued|Running)\b", line) for line in tasks):
            return status
        assert time.monotonic() < deadline, f"queue still busy after {QUEUE_TIMEOUT_S} s:\n{status}"
        time.sleep(POLL_S)


def experiments_by_name(shown: list[dict]) -> dict[str, dict]:
    """`dvc exp show --json`'s experiments (of every baseline) by name: their data block."""
    found = {}
    for baseline in shown:
        for experiment in baseline.get("experiments") or []:
            for rev in experiment.get("revs") or []:
                if rev.get("name"):
                    found[rev["name"]] = rev["data"]
    return found


def metrics(data: dict, path: str) -> dict:
    return (data.get("metrics") or {}).get(path, {}).get("data", {})


def generate_tallies(log: str) -> dict[str, int]:
    found = re.findall(r"(\d+) variants: (\d+) reused, (\d+) computed, (\d+) failed", log)
    assert found, "the generate stage logged no tallies"
    return dict(zip(("generated", "reused", "computed", "failed"), map(int, found[-1])))


def test_the_queued_experiment_succeeds_and_is_shown_with_its_metrics(queued: dict) -> None:
    status = [line for line in queued["status"].splitlines() if EXPERIMENT in line]
    assert len(status) == 1 and "Success" in status[0], queued["status"]
    data = queued["experiments"][EXPERIMENT]
    assert data["params"]["params.yaml"]["data"]["score"]["weights"]["color"] == 0.6
    assert {"mse", "mae", "r2", "recall_at_1"} <= set(metrics(data, "metrics/headline.json")), data["metrics"]


def test_changed_values_rerun_only_the_stages_downstream_of_them(queued: dict) -> None:
    # Fewer strengths change the variants (generate and all below it); a score weight, score and below.
    # ingest and finetune (originals only) are upstream of both.
    ran = stages_in(queued["log"])
    assert ran == {"params", "generate", "describe", "score", "siamese", "evaluate", "index", "report"}, \
        queued["log"][-3000:]


def test_queueing_leaves_the_workspace_as_it_was(queued: dict) -> None:
    assert queued["after"] == queued["before"]


def test_queued_generate_reuses_every_variant_from_the_user_cache(queued: dict, user_cache: Path) -> None:
    assert any((user_cache / "variants").rglob("*.jpg"))  # where the baseline's repro put them
    # Dropping strengths reruns generate, in a copy of the workspace without its git-ignored
    # files: every variant it plans is already in the store.
    # (how the run came by its variants is logged by the stage, not a metric: artsim.generate.assemble.run_tallies)
    made = generate_tallies(queued["log"])
    assert made["generated"] > 0, made
    assert (made["computed"], made["reused"]) == (0, made["generated"]), made


def test_queued_siamese_puts_its_features_in_the_user_cache(queued: dict) -> None:
    unique, cached = map(int, re.search(r"features: (\d+) unique images, (\d+) already cached", queued["log"]).groups())
    # What it computed is where the next run, queued or not, looks for it (not in the queue's copy).
    assert unique > 0 and len(queued["new_features"]) == unique - cached, (unique, cached, len(queued["new_features"]))
