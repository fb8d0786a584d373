"""Queued experiments (`dvc exp run --queue`, run by `dvc queue start` in a fresh copy of the
workspace without its git-ignored files) find the variant store that `dvc repro` filled and the
feature cache that another queued run filled: they live in the user cache ($ARTSIM_CACHE), not in
the workspace."""
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

# Queued runs of two experiments, each rerunning a few stages: minutes on a busy machine.
QUEUE_TIMEOUT_S = 20 * 60
POLL_S = 5
ONLY_COLOR = "color-05"
COLOR_AND_ONE_STRENGTH = "color-06-one-strength"
# The session's workspace is shared with other e2e modules: queueing must leave it as it was.
WORKSPACE_FILES = ("params.yaml", "dvc.lock", "metrics/evaluate.json")
# Frozen layers below layer4: their features go to the user cache.
CACHED_TRUNK = "siamese.train_layers=[layer4]"
# What is checked (variants and features found in the user cache, the runs listed with their metrics)
# does not depend on how long the siamese trains: one epoch, not the default's eight.
ONE_EPOCH = "siamese.epochs=1"
# Nor on the report's PDF, its slowest part (WeasyPrint), which no test here reads.
NO_PDF = "report.pdf=false"


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
def queued(reproduced_workspace) -> dict:
    """Two experiments queued in the session's reproduced workspace (its `dvc repro` filled the
    user cache) changing score.weights.color, one of them also keeping only the first strength
    (which reruns generate on variants the store already holds), run by `dvc queue start -j 1`.
    Both train layer4 only (`train_layers: all`, the default, caches no features), so the one that
    runs second finds the frozen features of every image it shares with the first in the cache."""
    repo = reproduced_workspace.path
    # As a user would before queueing: a queued experiment starts from a commit plus the tracked
    # changes, so untracked outputs (new metrics files) would make their stages rerun.
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "--allow-empty", "-m", "reproduced"], repo)
    before = {name: (repo / name).read_text() for name in WORKSPACE_FILES}
    strengths = yaml.safe_load((repo / "params.yaml").read_text())["generate"]["strengths"]
    assert len(strengths) > 1, "this test drops strengths: the workspace needs several"
    run(["dvc", "exp", "run", "--queue", "-n", ONLY_COLOR, "-S", "score.weights.color=0.5", "-S", CACHED_TRUNK,
         "-S", ONE_EPOCH, "-S", NO_PDF], repo)
    run(["dvc", "exp", "run", "--queue", "-n", COLOR_AND_ONE_STRENGTH, "-S", "score.weights.color=0.6",
         "-S", f"generate.strengths=[{strengths[0]}]", "-S", CACHED_TRUNK, "-S", ONE_EPOCH,
         "-S", NO_PDF], repo)
    run(["dvc", "queue", "start", "-j", "1"], repo)
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
        "logs": {
            name: run(["dvc", "queue", "logs", name], repo).stdout for name in (ONLY_COLOR, COLOR_AND_ONE_STRENGTH)
        },
    }


def wait_for_queue(repo: Path) -> str:
    """`dvc queue status` once no task is queued or running (bounded by QUEUE_TIMEOUT_S)."""
    deadline = time.monotonic() + QUEUE_TIMEOUT_S
    while True:
        status = run(["dvc", "queue", "status"], repo).stdout
        tasks = [line for line in status.splitlines() if ONLY_COLOR in line or COLOR_AND_ONE_STRENGTH in line]
        if len(tasks) == 2 and not any(re.search(r"\b(Queued|Running)\b", line) for line in tasks):
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


def test_both_queued_experiments_succeed_and_are_shown_with_their_metrics(queued: dict) -> None:
    status_of = {
        name: line
        for line in queued["status"].splitlines()
        for name in (ONLY_COLOR, COLOR_AND_ONE_STRENGTH)
        if name in line
    }
    assert all("Success" in line for line in status_of.values()) and len(status_of) == 2, queued["status"]
    for name, color in ((ONLY_COLOR, 0.5), (COLOR_AND_ONE_STRENGTH, 0.6)):
        data = queued["experiments"][name]
        assert data["params"]["params.yaml"]["data"]["score"]["weights"]["color"] == color
        assert {"mse", "mae", "r2", "recall_at_1"} <= set(metrics(data, "metrics/headline.json")), data["metrics"]


def test_a_good_value_reruns_only_the_stages_downstream_of_it(queued: dict) -> None:
    # generate may run in the queue's copy of the workspace, reusing every variant (the next test); its
    # outputs unchanged, nothing below it reruns for it.
    ran = stages_in(queued["logs"][ONLY_COLOR]) - {"generate"}
    assert ran == {"params", "score", "siamese", "evaluate", "index", "report"}, queued["logs"][ONLY_COLOR][-3000:]


def test_queueing_leaves_the_workspace_as_it_was(queued: dict) -> None:
    assert queued["after"] == queued["before"]


def test_queued_generate_reuses_every_variant_from_the_user_cache(queued: dict, user_cache: Path) -> None:
    assert any((user_cache / "variants").rglob("*.jpg"))  # where the baseline's repro put them
    # Only a score weight changed: generate need not run; if it does, it must make nothing.
    # (how the run came by its variants is logged by the stage, not a metric: artsim.generate.assemble.run_tallies)
    ran_generate = "Running stage 'generate'" in queued["logs"][ONLY_COLOR]
    assert not ran_generate or generate_tallies(queued["logs"][ONLY_COLOR])["computed"] == 0
    # Dropping strengths reruns generate, in a copy of the workspace without its git-ignored
    # files: every variant it plans is already in the store.
    assert "Running stage 'generate'" in queued["logs"][COLOR_AND_ONE_STRENGTH]
    # (metrics/generate.json is a plain output now, not a DVC metric that `dvc exp show` lists: the log says it)
    made = generate_tallies(queued["logs"][COLOR_AND_ONE_STRENGTH])
    assert made["generated"] > 0, made
    assert (made["computed"], made["reused"]) == (0, made["generated"]), made


def test_queued_siamese_finds_every_feature_in_the_user_cache(queued: dict, user_cache: Path) -> None:
    assert any((user_cache / "features").rglob("*.npy"))
    counts = {}
    for name in (ONLY_COLOR, COLOR_AND_ONE_STRENGTH):
        log = queued["logs"][name]
        assert "Running stage 'siamese'" in log
        counts[name] = tuple(map(int, re.search(r"features: (\d+) unique images, (\d+) already cached", log).groups()))
    # The one-strength experiment's images are a subset of the other's: whichever runs second
    # (the queue's order is not promised) finds every image they share, all of the smaller set.
    smaller = counts[COLOR_AND_ONE_STRENGTH][0]
    assert 0 < smaller < counts[ONLY_COLOR][0] and max(cached for _, cached in counts.values()) == smaller, counts
