"""What DVC costs on image-sized outputs: a synthetic WikiArt-shaped dataset of N originals,
the `import` backend with 3 variants each, `dvc repro` through `describe`, per DVC cache type.

For each N and each `cache.type` it copies the repository (as a clone would hold it) to a
scratch folder, runs `dvc repro <until>` and prints:

- each stage's own time (its process' wall time, recorded by a wrapper around its command),
- DVC's time beyond the stages (wall time of `dvc repro` minus the stages'),
- no-op `dvc status` (first call after the run, then the best of two more),
- disk used by the workspace outputs + DVC cache + variant store (hard links counted once, and
  not at all where they share the inputs' inodes) against the size of the images of
  data/ingested and data/generated,
- with `--push-pull`: `dvc push` to a local remote, a `git clone` elsewhere with an empty
  variant store, `dvc pull`, then `dvc status` must be clean and `dvc repro` must run nothing.

Usage (slow: N=20,000 writes 80,000 JPEGs and DVC hashes every one); `--baseline REV` measures a
committed revision too, on the same dataset in the same command (e.g. the layout before a change):
    nice -n 15 .venv/bin/python bench/dvc_scale.py --n 2000 --cache-types hardlink --push-pull --baseline 74ab816
    nice -n 15 .venv/bin/python bench/dvc_scale.py --n 20000 --until generate --cache-types hardlink --baseline 74ab816
The scratch folder (`--work`, default a temporary one) must be on one filesystem, as a
workspace and its caches usually are. Internally the script also runs as the stage wrapper:
`bench/dvc_scale.py timed <stage> <command...>`.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
STAGE_ORDER = ["ingest", "generate", "describe"]
STRENGTHS = [0.25, 0.5, 0.75]
STYLES = [
    "Abstract_Expressionism", "Baroque", "Cubism", "Early_Renaissance", "Expressionism",
    "Impressionism", "Minimalism", "Naive_Art_Primitivism", "Northern_Renaissance", "Pop_Art",
    "Post_Impressionism", "Realism", "Rococo", "Romanticism", "Symbolism", "Ukiyo_e",
]
# `<value>` of cache.type written to the copy's .dvc/config.
# "copy" is DVC's default (reflink where the filesystem can, else copy): the layout before this bench.
CACHE_TYPES = {"copy": "reflink,copy", "hardlink": "hardlink,copy", "symlink": "symlink,copy"}
TIMES_ENV = "DVC_SCALE_TIMES"


# --- the stage wrapper: runs inside `dvc repro` ---------------------------------------------

# How often a running stage's time so far is written down: what is counted if the run is killed.
HEARTBEAT_S = 30


def timed(stage: str, command: list[str]) -> int:
    """Run one stage's command and append its wall time, CPU time, peak memory and the machine's load to
    $DVC_SCALE_TIMES (outside the workspace). The CPU time is user + system of the stage's process tree (its
    workers included, once they are waited for): unlike wall time, it hardly moves when other jobs share the
    cores. The peak is the largest resident set of any one process of the stage (the stage or a worker of
    it), in MiB: what one process of it needs, not the sum over its workers.

    While the stage runs, its time so far is written every HEARTBEAT_S seconds beside the file; a run killed
    with it (a session's end) leaves that record, and the next stage to start appends it, marked
    `interrupted`, so a stage resumed from its checkpoint (artsim.learn.resume) counts every part it ran."""
    times = Path(os.environ[TIMES_ENV])
    running = times.with_suffix(".running")
    _append_interrupted(times, running)
    load_before = os.getloadavg()[0]
    started, usage_before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    process = subprocess.Popen(command)
    while True:
        try:
            code = process.wait(timeout=HEARTBEAT_S)
            break
        except subprocess.TimeoutExpired:  # written whole or not at all: a kill may come at any moment
            partial = running.with_suffix(".partial")
            partial.write_text(json.dumps({"stage": stage, "seconds": time.perf_counter() - started,
                                           "load_average": [load_before, os.getloadavg()[0]]}))
            os.replace(partial, running)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (usage.ru_utime + usage.ru_stime) - (usage_before.ru_utime + usage_before.ru_stime)
    with open(times, "a") as out:
        out.write(json.dumps({"stage": stage, "seconds": time.perf_counter() - started, "cpu_seconds": cpu_s,
                              "peak_rss_mib": usage.ru_maxrss / 1024,  # KiB on Linux
                              "load_average": [load_before, os.getloadavg()[0]],  # 1-minute, at start and end
                              "returncode": code}) + "\n")
    running.unlink(missing_ok=True)
    return code


def _append_interrupted(times: Path, running: Path) -> None:
    if running.exists():
        with open(times, "a") as out:
            out.write(json.dumps({**json.loads(running.read_text()), "interrupted": True}) + "\n")
        running.unlink()


def running_seconds(times: Path) -> float:
    """The time a killed stage had run, as its wrapper last wrote it down (0 when none was cut short)."""
    running = times.with_suffix(".running")
    return json.loads(running.read_text())["seconds"] if running.exists() else 0.0


# --- the synthetic dataset ------------------------------------------------------------------

def _save_painting(rng, size: tuple[int, int], grains: list, path: Path) -> None:
    """A smooth random colour field (its own: every file differs) plus grain from a small pool
    (cheap to make, and compresses like a painting scan rather than like flat colour).
    The random draws happen even when `path` exists, so an interrupted build resumes identically."""
    import numpy as np
    from PIL import Image

    small = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    grain = grains[int(rng.integers(len(grains)))]
    if path.exists():
        return
    base = np.asarray(Image.fromarray(small).resize(size, Image.Resampling.BICUBIC), dtype=np.int16)
    image = Image.fromarray(np.clip(base + grain[: base.shape[0], : base.shape[1]], 0, 255).astype(np.uint8))
    image.save(path.with_name(".tmp-" + path.name), format="JPEG", quality=90)
    path.with_name(".tmp-" + path.name).rename(path)


def build_dataset(root: Path, count: int, side: int, strengths: Sequence[float] = STRENGTHS) -> tuple[Path, Path]:
    """`source/<Style>/<artist>_<title>-<year>.jpg` and `import/<Style>/<stem>_<strength>.jpg` (one per strength;
    `strengths=()`: originals only, other originals than with variants, as the variants draw from the same stream)."""
    import numpy as np
    from tqdm import tqdm

    source, imported = root / "source", root / "import"
    done = root / "complete"
    if done.exists():
        return source, imported
    rng = np.random.default_rng(count)
    grains = [rng.integers(-12, 13, size=(side, side, 3), dtype=np.int16) for _ in range(8)]
    for index in tqdm(range(count), desc=f"synthetic dataset N={count}", file=sys.stderr, mininterval=5):
        style = STYLES[index % len(STYLES)]
        stem = f"artist-{index % 997}_painting-{index}-{1800 + index % 200}"
        size = (side, side * 3 // 4) if index % 2 else (side * 3 // 4, side)
        (source / style).mkdir(parents=True, exist_ok=True)
        (imported / style).mkdir(parents=True, exist_ok=True)
        _save_painting(rng, size, grains, source / style / f"{stem}.jpg")
        for strength in strengths:
            _save_painting(rng, size, grains, imported / style / f"{stem}_{strength}.jpg")
    done.touch()
    return source, imported


# --- one measured workspace -----------------------------------------------------------------

def environment(artsim_cache: Path, times: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(DVC_NO_ANALYTICS="1", HF_HUB_OFFLINE="1", OMP_WAIT_POLICY="PASSIVE", ARTSIM_CACHE=str(artsim_cache))
    env[TIMES_ENV] = str(times)
    env.update(GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@b", GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@b")
    return env


def run(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed in {cwd}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return seconds, result.stdout + result.stderr


def extract_revision(revision: str, target: Path, paths: Sequence[str] = ()) -> None:
    """`revision`'s tracked files (only `paths` of them where given) written into `target`, as git archive has them."""
    target.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", revision, *paths], cwd=REPO_ROOT, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "x", "-C", str(target)], input=archive, check=True)


def code_at(revision: str | None, work: Path) -> Path:
    """A folder holding `revision`'s artsim/ and stages/ (extracted once per `work` folder), to put on PYTHONPATH;
    this worktree where `revision` is None."""
    if revision is None:
        return REPO_ROOT
    folder = work / f"code-{revision.replace('/', '_')}"
    if not (folder / "artsim").is_dir():
        extract_revision(revision, folder, ("artsim", "stages"))
    return folder


def make_workspace(target: Path, source: Path, imported: Path, cache_type: str, env: dict[str, str],
                   revision: str | None = None) -> None:
    """A copy of the repository (what git tracks or would track, or a committed `revision` of it),
    params pointed at the dataset, stages timed."""
    import yaml

    sys.path.insert(0, str(REPO_ROOT))
    from stages.common import edit_params
    from tests.support.helpers import copy_worktree

    target.mkdir(parents=True)
    if revision is None:
        copy_worktree(target)
    else:
        extract_revision(revision, target)
    edit_params(target / "params.yaml", {"ingest.source": str(source), "generate.backend": "import",
                                         "generate.import_dir": str(imported), "generate.strengths": STRENGTHS,
                                         "generate.import_template": "{style}/{stem}_{strength}.jpg"})
    pipeline = yaml.safe_load((target / "dvc.yaml").read_text())
    for name, stage in pipeline["stages"].items():
        stage["cmd"] = f"python bench/dvc_scale.py timed {name} {stage['cmd']}"
    (target / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    run(["git", "init", "-q"], target, env)
    run(["dvc", "config", "cache.type", cache_type], target, env)
    run(["git", "add", "-A"], target, env)
    run(["git", "commit", "-q", "-m", "bench"], target, env)


def disk_kib(paths: dict[str, Path]) -> dict[str, int]:
    """`du -sk` of each labelled path, in one call so that an inode already counted (a hard link) counts once."""
    label_of = {str(path): label for label, path in paths.items() if path.exists()}
    out = subprocess.run(["du", "-sk", *label_of], capture_output=True, text=True, check=True).stdout
    return {label_of[line.split("\t", 1)[1]]: int(line.split("\t", 1)[0]) for line in out.splitlines()}


def image_kib(workspace: Path) -> int:
    """Size of the images themselves: the JPEG bytes the manifests of data/ingested and data/generated
    locate in shards, or (loose layout) the allocated size of their JPEG files, each inode once."""
    import pandas as pd

    total, seen = 0, {}
    for folder in ("data/ingested", "data/generated"):
        manifest = pd.read_parquet(workspace / folder / "manifest.parquet")
        if "length" in manifest:
            total += int(manifest["length"].sum())
            continue
        for path in (workspace / folder).rglob("*.jpg"):
            info = path.stat()
            seen[(info.st_dev, info.st_ino)] = info.st_blocks * 512
    return (total + sum(seen.values())) // 1024


def time_records(times: Path) -> list[dict]:
    return [json.loads(line) for line in times.read_text().splitlines()] if times.exists() else []


def stage_times(times: Path) -> dict[str, float]:
    """Each stage's wall time, summed over its runs (and the parts of it a killed run ran)."""
    totals: dict[str, float] = {}
    for record in time_records(times):
        totals[record["stage"]] = totals.get(record["stage"], 0.0) + record["seconds"]
    return totals


def measure(work: Path, count: int, kind: str, until: str, source: Path, imported: Path, push_pull: bool,
            revision: str | None = None) -> dict:
    root = work / f"n{count}-{kind}-{revision or 'worktree'}"
    shutil.rmtree(root, ignore_errors=True)  # a rerun in the same --work starts from scratch
    workspace, artsim_cache, times = root / "repo", root / "artsim-cache", root / "times.jsonl"
    env = environment(artsim_cache, times)
    make_workspace(workspace, source, imported, CACHE_TYPES[kind], env, revision)
    repro_s, _ = run(["dvc", "repro", until], workspace, env)
    stages = stage_times(times)
    status = ["dvc", "status", "--with-deps", until]  # the stages after `until` never ran
    status_first, status_out = run(status, workspace, env)
    status_best = min(run(status, workspace, env)[0] for _ in range(2))
    dvc_cache = workspace / ".dvc" / "cache"
    outputs = {name: workspace / "data" / name for name in ("ingested", "generated", "descriptors")}
    # The inputs come first so that what shares their inodes (the store's links to imported
    # files) counts there, then they are left out: they are the user's, not the pipeline's.
    caches = (
        {f"{p.name} cache": p for p in sorted(artsim_cache.iterdir())} if artsim_cache.is_dir() else {}
    )  # variants, descriptors
    disk = {
        label: kib
        for label, kib in disk_kib(
            {"source": source, "import": imported, **caches, **outputs, "DVC cache": dvc_cache}
        ).items()
        if label not in ("source", "import")
    }
    row = {
        "n": count,
        "cache_type": kind,
        "revision": revision or "worktree",
        "until": until,
        "stages_s": stages,
        "repro_s": repro_s,
        "dvc_s": repro_s - sum(stages.values()),
        "status_first_s": status_first,
        "status_best_s": status_best,
        "status_clean": "up to date" in status_out,
        "disk_kib": disk,
        "images_kib": image_kib(workspace),
    }
    if push_pull:
        row["push_pull"] = push_and_pull(root, workspace, until, env)
    return row


def push_and_pull(root: Path, workspace: Path, until: str, env: dict[str, str]) -> dict:
    """Push to a local remote, clone elsewhere with an empty variant store, pull: clean and nothing to run?"""
    run(["dvc", "remote", "add", "-d", "local", str(root / "remote")], workspace, env)
    run(["git", "add", "-A"], workspace, env)
    run(["git", "commit", "-q", "-m", "results"], workspace, env)
    push_s, _ = run(["dvc", "push"], workspace, env)
    clone = root / "clone"
    run(["git", "clone", "-q", str(workspace), str(clone)], root, env)
    clone_env = dict(env, ARTSIM_CACHE=str(root / "clone-artsim-cache"))  # another machine: no store
    pull_s, _ = run(["dvc", "pull", "--with-deps", until], clone, clone_env)
    _, status = run(["dvc", "status", "--with-deps", until], clone, clone_env)
    _, repro = run(["dvc", "repro", until], clone, clone_env)
    return {
        "push_s": push_s, "pull_s": pull_s, "remote_kib": disk_kib({"remote": root / "remote"})["remote"],
        "clone_status_clean": "up to date" in status, "clone_repro_ran": re.findall(r"Running stage '(\w+)'", repro),
    }


# --- report ---------------------------------------------------------------------------------

def print_row(row: dict) -> None:
    stages = " ".join(f"{name} {seconds:.1f}" for name, seconds in row["stages_s"].items())
    compute = sum(row["stages_s"].values())
    disk = row["disk_kib"]
    used = sum(disk.values())
    print(
        f"N={row['n']:>6} {row['revision']:<9} cache.type={row['cache_type']:<8} repro {row['repro_s']:7.1f} s"
        f" | stages {compute:7.1f} s ({stages})"
        f" | DVC beyond stages {row['dvc_s']:6.1f} s = {100 * row['dvc_s'] / compute:5.1f}% | no-op status"
        f" {row['status_first_s']:5.1f} s first, {row['status_best_s']:5.1f} s best"
        f"{'' if row['status_clean'] else ' NOT CLEAN'}"
    )
    parts = " + ".join(f"{name} {kib / 1024:.0f}" for name, kib in disk.items())
    print(
        f"         disk {used / 1024:7.0f} MiB ({parts}) for {row['images_kib'] / 1024:.0f} MiB of images: "
        f"x{used / max(row['images_kib'], 1):.2f}"
    )
    if "push_pull" in row:
        pp = row["push_pull"]
        print(
            f"         push {pp['push_s']:.1f} s ({pp['remote_kib'] / 1024:.0f} MiB), "
            f"pull into a clone {pp['pull_s']:.1f} s;"
            f" clone status clean: {pp['clone_status_clean']}; clone repro ran: {pp['clone_repro_ran'] or 'nothing'}"
        )
    sys.stdout.flush()


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "timed":
        sys.exit(timed(sys.argv[2], sys.argv[3:]))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[2000])
    parser.add_argument("--cache-types", nargs="+", choices=sorted(CACHE_TYPES), default=["copy", "hardlink"])
    parser.add_argument("--until", choices=STAGE_ORDER, default="describe")
    parser.add_argument("--side", type=int, default=384, help="long side of the synthetic paintings")
    parser.add_argument(
        "--work", type=Path, default=None, help="scratch folder (kept); default: a temporary one, removed"
    )
    parser.add_argument("--push-pull", action="store_true")
    parser.add_argument(
        "--baseline",
        default=None,
        metavar="REV",
        help="also measure this committed revision (e.g. the commit before a change), on the same dataset",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="dvc-scale-"))
    rows = []
    try:
        for count in args.n:
            source, imported = build_dataset(work / f"dataset-{count}", count, args.side)
            for revision in [args.baseline, None] if args.baseline else [None]:
                for kind in args.cache_types:
                    rows.append(measure(work, count, kind, args.until, source, imported, args.push_pull, revision))
                    print_row(rows[-1])
                if args.json:
                    args.json.write_text(json.dumps(rows, indent=1))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
