"""End to end: nothing lost on a bad experiment. `dvc exp run -S` of a bad value in any params block
fails at stage params, before DVC removes any stage's outputs: it exits non-zero with the line naming
the key and what is allowed, and every output and metric stays as it was (docs/experiments.md). That a
good value reruns only what it decides is checked on the queued experiment (tests/e2e/test_experiments.py),
which runs anyway."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_in as run
from tests.stages.test_params import BAD_VALUES
from tests.support.helpers import stages_run

pytestmark = pytest.mark.e2e

# What a run could lose: every output and metric, and the record of them.
OUTPUT_ROOTS = ("data", "models", "metrics")


def fingerprint(repo: Path) -> dict[str, str]:
    files = [path for root in OUTPUT_ROOTS for path in (repo / root).rglob("*") if path.is_file()]
    files.append(repo / "dvc.lock")
    return {path.relative_to(repo).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(files)}


def exp_run(repo: Path, *args: str) -> subprocess.CompletedProcess:
    """`dvc exp run ARGS` as a user runs it, failing or not."""
    env = dict(os.environ, DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(["dvc", "exp", "run", *args], cwd=repo, env=env, capture_output=True, text=True)


def status(repo: Path) -> dict:
    return json.loads(run(["dvc", "status", "--json"], repo).stdout or "{}")


@pytest.fixture(scope="module")
def workspace(reproduced_workspace) -> Path:
    repo = reproduced_workspace.path
    assert status(repo) == {}
    return repo


@pytest.fixture(scope="module")
def bad_run(workspace) -> dict:
    """One `dvc exp run` with a bad value in every params block (BAD_VALUES): the check reports each
    bad key at once (one run instead of one per block: each `dvc exp run` costs seconds of DVC)."""
    before, params = fingerprint(workspace), (workspace / "params.yaml").read_text()
    overrides = [arg for key, (value, _) in sorted(BAD_VALUES.items()) for arg in ("-S", f"{key}={value}")]
    try:
        result = exp_run(workspace, *overrides)
    finally:  # drop the failed experiment's params, as docs/experiments.md says
        (workspace / "params.yaml").write_text(params)
    return {"before": before, "result": result, "after": fingerprint(workspace), "status": status(workspace)}


def test_bad_values_fail_at_the_check_before_any_output_is_removed(bad_run):
    result = bad_run["result"]
    assert result.returncode != 0, (result.stdout + result.stderr)[-3000:]
    assert stages_run(result) == {"params"}
    assert bad_run["after"] == bad_run["before"]
    assert bad_run["status"] == {}


@pytest.mark.parametrize("key", sorted(BAD_VALUES))
def test_a_bad_value_in_any_block_is_named_with_what_is_allowed(key, bad_run):
    result = bad_run["result"]
    assert BAD_VALUES[key][1] in result.stdout + result.stderr, (result.stdout + result.stderr)[-3000:]


def test_a_run_only_value_reruns_only_the_check(workspace):
    before = fingerprint(workspace)
    params, lock = (workspace / "params.yaml").read_text(), (workspace / "dvc.lock").read_text()
    try:
        result = exp_run(workspace, "-S", "index.batch_size=64")
    finally:
        (workspace / "params.yaml").write_text(params)
        (workspace / "dvc.lock").write_text(lock)  # the check's record of the params, the only change
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert stages_run(result) == {"params"}
    assert fingerprint(workspace) == before
    assert status(workspace) == {}
