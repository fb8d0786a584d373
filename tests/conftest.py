from __future__ import annotations

# First, before anything imports torch, numpy or onnxruntime: tests compute on the kernels the
# stages pin (artsim.core.kernels), so that they pass or fail alike on every x86-64 machine;
# the stages and ranks they start inherit the pins. ARTSIM_NATIVE_KERNELS=1 opts out.
from artsim.core.kernels import pin_cpu_kernels

pin_cpu_kernels()

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from xdist.scheduler import LoadScopeScheduling

from artsim.core.cache_dirs import CACHE_ENV
from tests.support.helpers import SAMPLE_DIR, copy_worktree

_SESSION_CACHE = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    # Params built when test modules are imported resolve their cache folders then, before any fixture.
    config.stash[_SESSION_CACHE] = Path(tempfile.mkdtemp(prefix="artsim-cache-"))
    os.environ[CACHE_ENV] = str(config.stash[_SESSION_CACHE])


def pytest_unconfigure(config: pytest.Config) -> None:
    if _SESSION_CACHE in config.stash:
        shutil.rmtree(config.stash[_SESSION_CACHE], ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def user_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's $ARTSIM_CACHE, never the real ~/.cache/artsim: the variant store and feature
    cache of every run, shared as one user's runs share them. Autouse at session scope, so that
    it is set before any other fixture, such as reproduced_workspace's `dvc repro` (whose
    subprocesses, queue workers included, inherit the environment)."""
    root = tmp_path_factory.mktemp("artsim-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(root))
        yield root


@pytest.fixture
def sample_dir() -> Path:
    return SAMPLE_DIR


@pytest.fixture
def sample_copy(tmp_path: Path) -> Path:
    """A writable copy of data/sample, for tests that add or break files."""
    target = tmp_path / "source"
    shutil.copytree(SAMPLE_DIR, target)
    return target


# --- one `dvc repro` of the embedded default per session, shared by the e2e modules ----------

POISON = {"poisoned": "a committed evaluate.json that the first repro must replace"}


def run_in(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """A command in a workspace, with this interpreter first on PATH (dvc runs `python -m stages.X`); must succeed."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


@dataclass(frozen=True)
class ReproducedWorkspace:
    path: Path
    first_repro: subprocess.CompletedProcess


@pytest.fixture(scope="session")
def reproduced_workspace(tmp_path_factory: pytest.TempPathFactory) -> ReproducedWorkspace:
    """What a fresh clone holds (tracked files, no DVC cache), after `dvc repro`: the one pipeline
    run the e2e modules share (minutes on a CPU). Its committed metrics/evaluate.json is poisoned
    first: evaluate's outputs are in git and could match its rebuilt (deterministic) inputs, so
    without the poison a skipped evaluate would leave the committed figures looking like fresh ones.

    test_experiments.py commits it and queues an experiment in it; whoever uses it must rely only on
    it being a reproduced workspace (dvc status clean) of the default params."""
    target = tmp_path_factory.mktemp("clone")
    copy_worktree(target)
    for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "snapshot"]):
        run_in(command, target)
    (target / "metrics" / "evaluate.json").write_text(json.dumps(POISON))
    return ReproducedWorkspace(target, run_in(["dvc", "repro"], target))


# The slowest modules but the shared repro's, slowest first (pytest --durations, e2e or not): started early, so
# that the last module a worker takes is a short one. Order only: a name missing here changes no result.
LONGEST_FIRST = (
    "tests/stages/test_distributed_training.py",
    "tests/e2e/test_generate_stage.py",
    "tests/siamese/test_train.py",
    "tests/app/test_cli.py",
    "tests/e2e/test_dvc_deps.py",
    "tests/evaluate/test_run.py",
    "tests/evaluate/test_transformed.py",
    "tests/finetune/test_train.py",
    "tests/learn/test_feature_cache.py",
    "tests/siamese/test_train_robust.py",
    "tests/evaluate/test_calibration.py",
    "tests/app/test_serve_browser.py",
    "tests/report/test_document_browser.py",
)
SHARED_REPRO = "reproduced_workspace"
# The modules whose tests share the session's `dvc repro`: one worker runs them all, so that the repro
# runs once, not once per worker. Checked at collection: a module using the fixture must be listed.
SHARED_REPRO_MODULES = frozenset(f"tests/e2e/{name}.py" for name in (
    "test_pipeline", "test_use_model", "test_failed_experiments", "test_experiments", "test_resume_training"))


def _module(nodeid: str) -> str:
    return nodeid.split("::")[0]


def _start_order(item: pytest.Item) -> tuple[int, int]:
    module = _module(item.nodeid)
    if module in SHARED_REPRO_MODULES:
        return 0, 0
    if module in LONGEST_FIRST:
        return 1, LONGEST_FIRST.index(module)
    return (2, 0) if item.get_closest_marker("e2e") else (3, 0)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The scheduler below hands the groups out in this order, the longest first: the shared repro, then
    # LONGEST_FIRST, the rest of e2e, the rest.
    strays = {_module(item.nodeid) for item in items if SHARED_REPRO in getattr(item, "fixturenames", ())}
    if strays - SHARED_REPRO_MODULES:
        raise pytest.UsageError(f"add {sorted(strays - SHARED_REPRO_MODULES)} to SHARED_REPRO_MODULES")
    items.sort(key=_start_order)


class ModuleGroups(LoadScopeScheduling):
    """`make test`'s scheduling (-n 2 --dist loadscope --no-loadscope-reorder): a module runs on one worker,
    so that its module-scoped fixtures are built once, and the modules sharing the session's repro run on
    one worker together. (xdist's own `loadgroup` no longer groups under pytest 9.2, whose node ids it
    cannot suffix.)"""

    def _split_scope(self, nodeid: str) -> str:
        module = _module(nodeid)
        return SHARED_REPRO if module in SHARED_REPRO_MODULES else module


def pytest_xdist_make_scheduler(config: pytest.Config, log) -> LoadScopeScheduling | None:
    return ModuleGroups(config, log) if config.getvalue("dist") == "loadscope" else None
