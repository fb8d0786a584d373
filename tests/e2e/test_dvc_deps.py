"""dvc.yaml against the code and params.yaml: `dvc repro` never misses a change, and keys that
only say how to run never rerun anything.

- every project module a stage imports (at start-up or lazily, inside a function) is a dep;
- every params.yaml key is a params dep of some stage, or RUN_ONLY (artsim.params) and a
  params dep of none;
- inputs outside the repository are deps: replacing one file of `generate.import_dir` (or of
  any other outside input) makes `dvc status` report its stage changed;
- changing every run-only key reruns only stage params (the check of params.yaml); changing a
  key that decides results reruns the stages it decides;
- stage params checks every key before any other stage runs: each stage depends on its
  block's file there (stages/params.py).
"""
from __future__ import annotations

import ast
import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from artsim.core import layout
from artsim.params import NO_INPUT, ParamsError, parse_params, run_only_keys
from stages.common import INTERPOLATION, edit_params, interpolate, params_value
from tests.support.helpers import REPO_ROOT, copy_worktree

DVC_YAML = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())
STAGES = DVC_YAML["stages"]
PARAMS = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
PROJECT_PACKAGES = ("artsim", "stages")
# The stage that checks the whole of params.yaml before the others (stages/params.py).
CHECK = "params"


def _resolve(entry: str) -> str:
    """A dvc.yaml string with its ${key} interpolated from params.yaml, as DVC does."""
    return interpolate(entry, PARAMS)


def _deps(stage: str) -> list[str]:
    return [_resolve(dep) for dep in STAGES[stage]["deps"]]


def _covered(path: str, deps: list[str]) -> bool:
    """Whether a dep is `path` itself or a folder holding it."""
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


# --- every project module a stage imports is a dep -----------------------------------------

def _module_file(name: str) -> str | None:
    """The repository file of a project module (artsim.x -> artsim/x.py or artsim/x/__init__.py)."""
    parts = name.split(".")
    if parts[0] not in PROJECT_PACKAGES:
        return None
    for candidate in (Path(*parts).with_suffix(".py"), Path(*parts) / "__init__.py"):
        if (REPO_ROOT / candidate).is_file():
            return candidate.as_posix()
    return None


def _imported_names(path: str) -> set[str]:
    """Every module an `import` anywhere in the file names (functions included: lazy imports are
    imports too), with the packages on the way (`import a.b.c` runs a/__init__ and a/b/__init__)."""
    package = path.rsplit("/", 1)[0].replace("/", ".")
    names: set[str] = set()
    for node in ast.walk(ast.parse((REPO_ROOT / path).read_text())):
        if isinstance(node, ast.Import):
            found = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            found = [base] + [f"{base}.{alias.name}" for alias in node.names]  # `from pkg import module`
        else:
            continue
        for name in found:
            parts = name.split(".")
            names.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return names


def _static_closure(start: str) -> set[str]:
    """The project files `start` imports, transitively, read from the source."""
    seen, todo = set(), [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(f for f in map(_module_file, _imported_names(path)) if f)
    return seen


# The libraries the stages share, imported once before the per-stage children fork: what makes an
# import of a stage take seconds. They are not project code, so they change no child's answer.
SHARED_LIBRARIES = ("numpy", "pandas", "pyarrow.parquet", "PIL.Image", "torch", "torchvision", "pydantic", "yaml",
                    "tqdm", "cv2", "scipy", "sklearn", "matplotlib")
# Per stage, a child forked from an interpreter that holds no project module imports stages.<stage>
# and prints the project files then loaded: what a fresh interpreter loads with that import.
IMPORT_PROBE = """
import importlib, json, os, sys, traceback
root, stages, libraries = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(",")
def project_files():
    return sorted(m.__file__ for m in list(sys.modules.values())
                  if getattr(m, "__file__", None) and os.path.realpath(m.__file__).startswith(root + os.sep))
for name in libraries:
    importlib.import_module(name)
assert not [f for f in project_files() if os.path.relpath(f, root).split(os.sep)[0] in ("artsim", "stages")], \
    "a shared library imported project code"
for stage in stages:
    child = os.fork()
    if child == 0:
        try:
            importlib.import_module("stages." + stage)
            print(json.dumps({"stage": stage, "files": project_files()}), flush=True)
            os._exit(0)
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(1)
    assert os.waitpid(child, 0)[1] == 0, "import of stages." + stage + " failed"
"""


@functools.cache
def _loaded_by_stage() -> dict[str, set[str]]:
    """Per stage, the project files a fresh interpreter has loaded after `import stages.<stage>`."""
    listed = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE, str(REPO_ROOT.resolve()), ",".join(STAGES), ",".join(SHARED_LIBRARIES)],
        cwd=REPO_ROOT, capture_output=True, text=True,
    )
    assert listed.returncode == 0, listed.stderr[-4000:]
    found: dict[str, set[str]] = {}
    for line in listed.stdout.splitlines():
        answer = json.loads(line)
        found[answer["stage"]] = _project_files(answer["files"])
    assert set(found) == set(STAGES), listed.stderr[-4000:]
    return found


def _project_files(names: list[str]) -> set[str]:
    files = set()
    for name in names:
        path = Path(name)
        if path.is_absolute() and path.is_file() and path.is_relative_to(REPO_ROOT):
            relative = path.relative_to(REPO_ROOT)
            if relative.parts[0] in PROJECT_PACKAGES:
                files.add(relative.as_posix())
    return files


def _loaded_at_import(stage: str) -> set[str]:
    """The project files a fresh interpreter has loaded after `import stages.<stage>`."""
    return _loaded_by_stage()[stage]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_module_a_stage_imports_is_one_of_its_deps(stage):
    entry = f"stages/{stage}.py"
    assert STAGES[stage]["cmd"] == f"python -m stages.{stage}"
    imported = _loaded_at_import(stage) | _static_closure(entry)
    missing = sorted(path for path in imported if not _covered(path, _deps(stage)))
    assert not missing, f"stage {stage} imports {missing}, which its deps in dvc.yaml lack"


def _code_deps(stage: str) -> list[str]:
    return [dep for dep in _deps(stage) if dep.split("/", 1)[0] in PROJECT_PACKAGES]


def _unused_code_deps(stage: str, deps: list[str]) -> list[str]:
    imported = _loaded_at_import(stage) | _static_closure(f"stages/{stage}.py")
    return [dep for dep in deps if not any(_covered(path, [dep]) for path in imported)]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_code_dep_of_a_stage_holds_a_module_it_imports(stage):
    # An extra dep reruns the stage on edits that cannot change its output.
    unused = _unused_code_deps(stage, _code_deps(stage))
    assert not unused, f"stage {stage} lists deps {unused} in dvc.yaml, which nothing it runs imports"


def _blocks_read(stage: str) -> set[str]:
    """The params.yaml blocks (and top-level keys such as seed) the stage's entry script reads:
    `params.<block>` or `load_params().<block>`."""
    read: set[str] = set()
    for node in ast.walk(ast.parse((REPO_ROOT / f"stages/{stage}.py").read_text())):
        if isinstance(node, ast.Attribute):
            owner = node.value
            called = owner.func if isinstance(owner, ast.Call) else None
            if (isinstance(owner, ast.Name) and owner.id == "params") or (
                    isinstance(called, ast.Name) and called.id == "load_params"):
                read.add(node.attr)
    return read


# The report shows every result key of every block (stages/report.py: shown_params walks them all), so it
# reads each block without naming it.
READS_EVERY_BLOCK = {"report"}


def _unread_params(stage: str, keys: set[str]) -> list[str]:
    if stage in READS_EVERY_BLOCK:
        return []
    return sorted(key for key in keys if key.split(".", 1)[0] not in _blocks_read(stage))


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_params_dep_of_a_stage_is_read_by_it(stage):
    unread = _unread_params(stage, _params_deps()[stage])
    assert not unread, f"stage {stage} lists params {unread} in dvc.yaml, which it never reads"


def test_the_unused_dep_checks_catch_the_deps_index_and_evaluate_once_had():
    # index listed artsim/generate (and describe, score, evaluate) through a pHash it took from evaluate;
    # evaluate listed score.weights, which it reads from data/pairs instead
    once = ["artsim/generate", "artsim/describe", "artsim/score", "artsim/evaluate"]
    assert _unused_code_deps("index", [*_code_deps("index"), *once]) == once
    assert _unread_params("evaluate", {"score.weights"}) == ["score.weights"]
    assert _unread_params("score", {"seed", "score.negatives", "describe.size"}) == []
    assert _unread_params("ingest", {"ingest.source"}) == []


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_dep_exists_with_the_default_params(stage):
    # An unused outside input names the placeholder (DVC deps cannot be null); a stale
    # module name after a rename would make DVC fail on a missing dependency.
    produced = {out if isinstance(out, str) else next(iter(out)) for s in STAGES.values() for out in s.get("outs", [])}
    missing = [dep for dep in _deps(stage) if not _covered(dep, sorted(produced)) and not (REPO_ROOT / dep).exists()]
    assert not missing, f"stage {stage}: deps {missing} do not exist"
    assert (REPO_ROOT / NO_INPUT).is_file()


# --- stage params checks every key before any other stage runs --------------------------------

def test_the_check_tracks_every_key_and_keeps_its_output_when_it_fails():
    check = STAGES[CHECK]
    assert check["params"] == [{"params.yaml": None}]  # the whole file: run-only keys and unknown ones too
    assert check["outs"] == [{layout.VALIDATED_PARAMS.as_posix(): {"cache": False, "persist": True}}]


@pytest.mark.parametrize("stage", sorted(set(STAGES) - {CHECK}))
def test_every_stage_runs_after_the_check_of_its_block(stage):
    # DVC runs a stage after those whose outputs it depends on, and stops at the first failure.
    assert layout.validated_params(stage).as_posix() in _deps(stage)


# --- every params key is a params dep or run-only -----------------------------------------

def _leaf_keys(tree: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, value in tree.items():
        if isinstance(value, dict):
            keys |= _leaf_keys(value, f"{prefix}{name}.")
        else:
            keys.add(prefix + name)
    return keys


def _params_deps() -> dict[str, set[str]]:
    """Each stage's params deps from params.yaml (DVC's default params file)."""
    found: dict[str, set[str]] = {}
    for stage, spec in STAGES.items():
        keys: set[str] = set()
        for entry in spec.get("params", []):
            if isinstance(entry, str):
                keys.add(entry)
            elif "params.yaml" in entry:
                keys.update(entry["params.yaml"] or [])
        found[stage] = keys
    return found


def _covering_stages(key: str) -> list[str]:
    return sorted(
        stage for stage, deps in _params_deps().items() if any(key == d or key.startswith(d + ".") for d in deps)
    )


def test_every_params_key_is_a_params_dep_or_run_only():
    run_only = run_only_keys()
    forgotten = sorted(key for key in _leaf_keys(PARAMS) if key not in run_only and not _covering_stages(key))
    assert not forgotten, (
        f"params {forgotten} are no stage's params dep in dvc.yaml: changing them would rerun nothing. List each "
        "under the params of the stages it decides, or, if it only says how to run, "
        "mark it RUN_ONLY in artsim/params/__init__.py"
    )


def test_no_run_only_key_is_a_params_dep():
    rerunning = {key: _covering_stages(key) for key in sorted(run_only_keys())}
    rerunning = {key: stages for key, stages in rerunning.items() if stages}
    assert not rerunning, (
        f"run-only keys are params deps (list the stage's keys one by one instead of its block): {rerunning}"
    )


def test_every_params_dep_names_a_key_of_params_yaml():
    names = _leaf_keys(PARAMS)
    unknown = sorted(
        d for deps in _params_deps().values() for d in deps if not any(k == d or k.startswith(d + ".") for k in names)
    )
    assert not unknown, f"dvc.yaml lists params {unknown} that params.yaml lacks"


def test_run_only_keys_exist_in_params_yaml():
    assert run_only_keys() <= _leaf_keys(PARAMS)


# --- dvc status in a copy of the repository -----------------------------------------------

def _dvc(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(
        os.environ, DVC_NO_ANALYTICS="1", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    )
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _status(cwd: Path) -> dict[str, Any]:
    return json.loads(_dvc(["status", "--json"], cwd).stdout or "{}")


def _changed_params(status: dict[str, Any]) -> dict[str, set[str]]:
    """Stage -> the params.yaml keys dvc status reports changed."""
    found: dict[str, set[str]] = {}
    for stage, changes in status.items():
        for change in changes:
            if isinstance(change, dict):
                found.setdefault(stage, set()).update(change.get("changed deps", {}).get("params.yaml", {}))
    return found


def _edit_params(repo: Path, values: dict[str, Any]) -> None:
    edit_params(repo / "params.yaml", values)


@pytest.fixture
def committed_repo(tmp_path) -> Path:
    """A copy of the repository whose dvc.lock records the current deps and params: stand-in
    outputs are committed with `dvc commit`, so nothing runs."""
    repo = tmp_path / "repo"
    repo.mkdir()
    copy_worktree(repo)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    for stage in STAGES.values():
        for out in [*stage.get("outs", []), *stage.get("metrics", [])]:
            path = repo / (out if isinstance(out, str) else next(iter(out)))
            if path.suffix:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("{}\n")
            else:
                path.mkdir(parents=True, exist_ok=True)
                (path / "stand-in.txt").write_text("stand-in\n")
    for name in STAGES:  # deps inside another stage's output folder (data/ingested/manifest.parquet)
        for dep in _deps(name):
            if not (repo / dep).exists():
                (repo / dep).write_text("stand-in\n")
    (repo / "dvc.lock").unlink(missing_ok=True)
    _dvc(["commit", "--force", "--quiet"], repo)
    assert _status(repo) == {}
    return repo


# A new value for each run-only key; each differs from the default.
RUN_ONLY_VALUES = {
    "ingest.workers": 3,
    "describe.workers": 3,
    "describe.cache": "/tmp/elsewhere/descriptors",
    "generate.store": "/tmp/elsewhere/variants",
    "generate.batch_size": 17,
    "generate.device": "cuda:1",
    "generate.cpu_offload": True,
    "generate.processes": "auto",
    "finetune.loader_workers": 4,
    "finetune.processes": 2,
    "siamese.feature_cache": "/tmp/elsewhere/features",
    "siamese.loader_workers": 4,
    "siamese.processes": 2,
    "evaluate.batch_size": 7,
    "evaluate.loader_workers": 2,
    "index.batch_size": 64,
}
# A key that decides results per stage, and the stages whose params it is.
RESULT_VALUES = {
    "ingest.max_side": (256, {"ingest"}),
    "generate.steps": (30, {"generate"}),
    "generate.revision": ("main", {"generate"}),
    # score saves the describe params with the pairs (descriptor_score.json)
    "describe.edge_grid": (4, {"describe", "score"}),
    "score.negatives": (2, {"score"}),
    "finetune.batch_size": (8, {"finetune"}),
    "finetune.precision": ("bf16", {"finetune"}),
    "siamese.image_size": (96, {"siamese"}),
    "score.weights.color": (0.5, {"score"}),
    "evaluate.shortlist": (50, {"evaluate"}),
    "seed": (7, {"generate", "score", "finetune", "siamese", "evaluate"}),
}


def test_run_only_values_cover_the_run_only_keys():
    assert set(RUN_ONLY_VALUES) == run_only_keys()


def test_changing_run_only_keys_reruns_only_the_check_and_result_keys_rerun_their_stages(committed_repo):
    _edit_params(committed_repo, RUN_ONLY_VALUES)
    changed = _changed_params(_status(committed_repo))
    # The check reruns (seconds) and writes the same files: no stage that depends on them reruns.
    assert set(changed) == {CHECK}, f"run-only keys would rerun stages: {changed}"
    _dvc(["commit", "--force", "--quiet", CHECK], committed_repo)

    _edit_params(committed_repo, {key: value for key, (value, _) in RESULT_VALUES.items()})
    changed = _changed_params(_status(committed_repo))
    for key, (_, stages) in RESULT_VALUES.items():
        # a stage that lists a whole block (`- describe`) is reported by the block's name
        reported = {stage for stage, keys in changed.items() if any(key == k or key.startswith(k + ".") for k in keys)}
        expected = stages | {"report", CHECK}  # the report shows every key that decides a result
        assert reported == expected, (
            f"{key}: dvc status reports {sorted(reported)} changed, expected {sorted(expected)}"
        )


def _write_input(root: Path, kind: str) -> tuple[Path, Path]:
    """An outside input (a folder of two files, or one file) and the file of it to replace."""
    if kind == "file":
        root.mkdir(parents=True)
        (root / "start.safetensors").write_bytes(b"a" * 100)
        return root / "start.safetensors", root / "start.safetensors"
    (root / "Impressionism").mkdir(parents=True)
    for name in ("a", "b"):
        (root / "Impressionism" / f"{name}_resize768_generated.jpg").write_bytes(name.encode() * 100)
    return root, root / "Impressionism" / "b_resize768_generated.jpg"


# Each params key naming an input outside the repository, the stage it decides, what it names.
OUTSIDE_INPUTS = [("generate.import_dir", "generate", "folder"), ("generate.model_dir", "generate", "folder"),
                  ("generate.vae_dir", "generate", "folder"), ("finetune.weights_file", "finetune", "file"),
                  ("siamese.trunk_weights_file", "siamese", "file")]


def test_replacing_one_file_of_an_outside_input_changes_its_stage(committed_repo, tmp_path):
    named = {key: _write_input(tmp_path / key, kind) for key, _, kind in OUTSIDE_INPUTS}
    _edit_params(committed_repo, {key: str(path) for key, (path, _) in named.items()})
    # the report shows the params, so their new values change it too
    _dvc(["commit", "--force", "--quiet", CHECK, "generate", "finetune", "siamese", "report"],
         committed_repo)
    assert _status(committed_repo) == {}

    for key, stage, _ in OUTSIDE_INPUTS:  # one at a time: each must show under its own name
        path, replaced = named[key]
        replaced.unlink()
        replaced.write_bytes(b"c" * 100)  # same name and size, other content
        status = _status(committed_repo)
        modified = [
            change["changed deps"]
            for change in status.get(stage, [])
            if isinstance(change, dict) and "changed deps" in change
        ]
        # (the inputs replaced before stay changed, each listed by its own path: no commit between, seconds each)
        assert modified and str(path) in modified[0], f"{key}: dvc status does not see the change: {status}"


def test_outside_inputs_are_the_interpolated_deps():
    interpolated = {
        (match, stage) for stage, spec in STAGES.items() for dep in spec["deps"] for match in INTERPOLATION.findall(dep)
    }
    assert interpolated == {("ingest.source", "ingest")} | {(key, stage) for key, stage, _ in OUTSIDE_INPUTS}


def test_an_unused_outside_input_names_the_placeholder_and_parses_as_none():
    params = parse_params(PARAMS)
    for key, _, _ in OUTSIDE_INPUTS:
        assert params_value(PARAMS, key) == NO_INPUT.as_posix()
        block, name = key.split(".")
        assert getattr(getattr(params, block), name) is None


def test_a_local_folder_in_a_hub_id_key_is_refused_for_its_dep_key(tmp_path):
    # From params.yaml, a folder in generate.model would be read but never hashed by DVC.
    raw = {**PARAMS, "generate": {**PARAMS["generate"], "backend": "sdxl", "model": str(tmp_path)}}
    with pytest.raises(ParamsError, match="generate.model_dir"):
        parse_params(raw)
    raw["generate"] = {**PARAMS["generate"], "backend": "sdxl", "model_dir": str(tmp_path)}
    assert parse_params(raw).generate.model == str(tmp_path)
    raw = {**PARAMS, "finetune": {**PARAMS["finetune"], "weights": str(tmp_path)}}
    with pytest.raises(ParamsError, match="finetune.weights_file"):
        parse_params(raw)
