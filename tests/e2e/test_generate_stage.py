"""The generate stage as users run it, on the tiny SDXL refiner in a throw-away copy of the
repository: `dvc repro`, kill -9 and resume, a widened sweep, and two torchrun ranks (gloo)."""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from artsim.core.shards import manifest_images
from tests.support.generate_fixtures import decodes, tiny_refiner
from tests.support.helpers import copy_worktree, random_painting

pytestmark = pytest.mark.e2e

PAINTINGS = [
    ("Impressionism", "claude-monet_water-lilies-1906", (120, 90)),
    ("Ukiyo_e", "katsushika-hokusai_the-great-wave", (90, 120)),
    ("Baroque", "rembrandt_the-night-watch-1642", (120, 90)),
    ("Cubism", "juan-gris_still-life-1914", (100, 100)),
]


def environment() -> dict[str, str]:
    env = dict(os.environ)
    # dvc runs `python -m stages.X` through the shell: it must find this interpreter first.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(DVC_NO_ANALYTICS="1", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    return env


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=environment(), capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def set_generate(clone: Path, **values) -> None:
    params_file = clone / "params.yaml"
    params = yaml.safe_load(params_file.read_text())
    params["generate"].update(values)
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))


def metrics(clone: Path) -> dict:
    return json.loads((clone / "metrics" / "generate.json").read_text())


# The stage logs how it came by its variants (artsim.generate.assemble.run_tallies); the metrics say only what it made.
TALLIES = re.compile(r"(\d+) variants: (\d+) reused, (\d+) computed, (\d+) failed")


def tallies(result: subprocess.CompletedProcess) -> dict:
    found = TALLIES.findall(result.stdout + result.stderr)
    assert found, f"no tallies logged:\n{result.stderr[-3000:]}"
    return dict(zip(("generated", "reused", "computed", "failed"), map(int, found[-1])))


def repro_generate(clone: Path) -> dict:
    """`dvc repro generate`: metrics/generate.json with the run's logged tallies."""
    result = run(["dvc", "repro", "generate"], clone)
    return {**tallies(result), **metrics(clone)}


def stored(store: Path) -> list[Path]:
    return sorted(p for p in store.rglob("*.jpg") if not p.name.startswith("."))


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A fresh clone whose params run the sdxl backend on the tiny refiner over 4 paintings."""
    target = tmp_path_factory.mktemp("clone")
    copy_worktree(target)
    for index, (style, stem, size) in enumerate(PAINTINGS):
        path = target / "tiny_source" / style / f"{stem}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        random_painting(200 + index, size).save(path, quality=95)
    model = tiny_refiner(tmp_path_factory.getbasetemp())
    params = yaml.safe_load((target / "params.yaml").read_text())
    params["ingest"]["source"] = "tiny_source"
    params["generate"].update(
        backend="sdxl", model_dir=str(model), resolution=32, steps=5, strengths=[0.5], batch_size=2, device="cpu"
    )
    (target / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], target)
    run(["git", "add", "-A"], target)
    run(["git", "commit", "-q", "-m", "snapshot"], target)
    return target


@pytest.fixture(scope="module")
def single_process(clone, tmp_path_factory) -> dict:
    """`dvc repro` three times: first run, no-op, widened sweep; keeps what each left."""
    runs = {}
    runs["first"] = repro_generate(clone)
    manifest = pd.read_parquet(clone / "data" / "generated" / "manifest.parquet")
    runs["decoded"] = all(decodes(image) for image in manifest_images(manifest, clone / "data" / "generated"))
    runs["manifest"] = manifest
    runs["noop"] = run(["dvc", "repro", "generate"], clone).stdout
    set_generate(clone, strengths=[0.5, 0.75])
    runs["widened"] = repro_generate(clone)
    runs["status"] = run(["dvc", "status", "generate"], clone).stdout
    runs["output"] = tmp_path_factory.mktemp("single") / "generated"
    shutil.copytree(clone / "data" / "generated", runs["output"])
    return runs


def test_repro_generates_then_reuses_then_computes_only_a_new_strength(single_process):
    first, manifest = single_process["first"], single_process["manifest"]
    assert (first["planned"], first["computed"], first["reused"], first["failed"]) == (4, 4, 0, 0)
    assert {"id", "original_id", "path", "strength", "style_source_id", "prompt", "seed"} <= set(manifest.columns)
    assert set(manifest["backend"]) == {"sdxl"} and manifest["prompt"].str.len().min() > 0
    assert single_process["decoded"]
    assert "Running stage 'generate'" not in single_process["noop"]
    widened = single_process["widened"]
    assert (widened["planned"], widened["computed"], widened["reused"]) == (8, 4, 4)
    assert "up to date" in single_process["status"]


def test_two_torchrun_ranks_make_the_same_output_as_one_process(clone, single_process):
    set_generate(clone, store=".artsim/two", processes=2)  # dvc -> stages.generate -> torchrun, 2 gloo ranks
    # Both keys are run-only (dvc status stays clean), so the rerun is forced.
    result = run(["dvc", "repro", "--force", "--single-item", "generate"], clone)
    assert "rank 1/2" in result.stdout + result.stderr
    assert tallies(result)["computed"] == 8
    single, two = single_process["output"], clone / "data" / "generated"
    one_manifest = pd.read_parquet(single / "manifest.parquet")
    pd.testing.assert_frame_equal(one_manifest, pd.read_parquet(two / "manifest.parquet"))
    assert [image.read_bytes() for image in manifest_images(one_manifest, single)] == \
        [image.read_bytes() for image in manifest_images(one_manifest, two)]


def kill_after(clone: Path, store: Path, count: int) -> int:
    """Start `dvc repro generate`, SIGKILL its whole process group once `count` variants are stored."""
    log = clone / ".artsim" / "killed-run.log"  # git- and dvc-ignored
    log.parent.mkdir(exist_ok=True)
    with open(log, "w") as output:
        process = subprocess.Popen(
            ["dvc", "repro", "generate"],
            cwd=clone,
            env=environment(),
            start_new_session=True,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 300
        while len(stored(store)) < count and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert process.poll() is None, f"the run ended before it could be killed:\n{log.read_text()[-3000:]}"
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return len(stored(store))


def test_kill_9_at_random_points_then_repro_completes_computing_only_the_missing(clone):
    store = clone / ".artsim" / "killed"
    set_generate(
        clone, store=".artsim/killed", strengths=[0.2, 0.4, 0.6, 0.8], batch_size=1, processes=1
    )  # 16 variants
    point = random.Random(4).randint(2, 8)
    before = kill_after(clone, store, point)
    assert 0 < before < 16, "the run was not interrupted"
    for path in stored(store):
        assert decodes(path), f"{path} is corrupt"
    generated = clone / "data" / "generated"
    if (generated / "manifest.parquet").exists():  # an output left behind locates only whole images
        assert all(
            decodes(image) for image in manifest_images(pd.read_parquet(generated / "manifest.parquet"), generated)
        )

    after = repro_generate(clone)
    assert (after["planned"], after["reused"], after["computed"], after["failed"]) == (16, before, 16 - before, 0)
    manifest = pd.read_parquet(generated / "manifest.parquet")
    assert len(manifest) == 16 and all(decodes(image) for image in manifest_images(manifest, generated))
    assert not [
        p for p in generated.rglob("*") if p.is_file() and p.name.startswith(".")
    ]  # no temporary left in the output
