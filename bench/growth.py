r"""How every stage grows with the collection (issue 28): the whole DAG on `bench/scale_retrieval.py`'s
synthetic WikiArt-shaped data (`bench/dvc_scale.py`'s procedural originals, 3 derived variants each,
adopted through the `import` backend) at several N, with cheap training params (CHEAP, printed), one
stage at a time (`dvc repro -s STAGE`, each timed by dvc_scale's wrapper: CPU time of the stage's
process tree, wall time, the load average, and the peak resident set of the stage's largest process).

Per stage it fits the exponent k of CPU time ~ N^k (least squares on log-log; on a shared machine other
jobs stretch wall time, hardly CPU time; wall time's exponent is shown beside) and projects the stage to
the study's scale, 81,444 originals x 3 variants:

- CPU stages (as measured here): CPU time t(N_max) x (81,444 / N_max)^max(k, 1): a fixed start-up cost
  (which flattens k at small N) or a noisy marginal cost never makes the projection optimistic;
- evaluate in two parts (bench/growth_fit.py, split_evaluate): it runs a second time with one sampled query
  (evaluate_unsampled), whose projection is the part every held-out query costs; the rest, per sampled query,
  is counted for the study's sampled queries, which params.yaml's evaluate.max_sampled_queries caps;
- GPU stages (SDXL generation, finetune, siamese at params.yaml's own image sizes and epochs): FLOPs
  per image (ResNet-50 counted on the meta device; the SDXL UNet's figure an ASSUMPTION, see
  SDXL_UNET_TFLOP) over ASSUMED sustained GPU throughput (bench/generate_sdxl.py's PEAKS and
  EFFICIENCY). No GPU figure is measured on this machine.

Goals (issue 28): every exponent <= 1.1, peak RSS <= 4 GB at N=4,000 and flat, the whole study in
one day on one 8-GPU node. Writes bench/results/growth.json (after every N) and prints the table.

    nice -n 10 .venv/bin/python bench/growth.py --n 500 1000 2000 4000 --work /tmp/growth
    nice -n 10 .venv/bin/python bench/growth.py --n 50 --work /tmp/growth --no-record   # a smoke run
    .venv/bin/python bench/growth.py --work /tmp/growth --summarise   # the table again, from what was measured
    nice -n 10 .venv/bin/python bench/growth.py --n 500 1000 --work /tmp/growth --keep-recorded  # other N kept
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
from dvc_scale import CACHE_TYPES, build_dataset, environment, extract_revision, make_workspace, run
from growth_fit import (
    GOAL_SIZES,
    STAGES,
    STUDY_ORIGINALS,
    UNSAMPLED,
    gaps,
    gpu_projections,
    projection,
    summarise,
    table,
    with_measured_peaks,
)
from scale_retrieval import derive_variants
from seeds import set_params

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.results import record  # noqa: E402

# Cheap training so that the CPU run measures growth, not learning; the GPU projection uses params.yaml's own.
CHEAP = {
    "finetune.epochs": 1,
    "siamese.epochs": 1,
    "siamese.train_layers": ["layer4"],  # trunk frozen below layer4: the feature cache in use
    "finetune.image_size": 64,
    "siamese.image_size": 64,
    "report.pdf": False,  # the HTML report only: WeasyPrint's PDF needs system libraries
}
RECORD = Path(__file__).resolve().parent / "results" / "growth.json"
SCORE_AT_SCALE = RECORD.parent / "score_at_scale.json"


# --- the measurements ---------------------------------------------------------------------------

def measure(work: Path, count: int, side: int, revision: str | None) -> dict[str, Any]:
    """One workspace at N=count, its stages run one by one: see `measured`."""
    dataset = work / f"dataset-{count}-side{side}"
    source, _independent = build_dataset(dataset, count, side)
    imported = derive_variants(source, dataset / "derived")
    root = work / f"n{count}-growth"
    shutil.rmtree(root, ignore_errors=True)
    workspace, times = root / "repo", root / "times.jsonl"
    env = environment(root / "artsim-cache", times)
    make_workspace(workspace, source, imported, CACHE_TYPES["hardlink"], env, revision)
    set_params(workspace, CHEAP)
    (root / "revision.txt").write_text(revision or "the worktree")
    run_stages(workspace, root, env, STAGES, count)
    return measured(root)


def remeasure(work: Path, count: int, revision: str, first: str, cap: int | None) -> dict[str, Any]:
    """The workspace at N=count measured again from stage `first` on with `revision`'s code (artsim/ and stages/;
    its params and dvc.yaml kept, evaluate's cap restored to `cap`): a stage's code changed, and the hours of the
    stages before it are not spent again. The revision note names both commits."""
    root = work / f"n{count}-growth"
    workspace = root / "repo"
    env = environment(root / "artsim-cache", root / "times.jsonl")
    for folder in ("artsim", "stages"):
        shutil.rmtree(workspace / folder)
    extract_revision(revision, workspace, ("artsim", "stages"))
    set_params(workspace, {"evaluate.max_sampled_queries": cap})
    (root / "revision.txt").write_text(revision_note((root / "revision.txt").read_text().strip(), first, revision))
    run_stages(workspace, root, env, STAGES[STAGES.index(first):], count, force=True)
    return measured(root)


def revision_note(before: str, first: str, revision: str) -> str:
    """The workspace's revision note once the stages from `first` on are measured with `revision`: what an earlier
    remeasure said of those stages (now measured again, or cut short) is dropped."""
    later = "|".join(map(re.escape, STAGES[STAGES.index(first):]))
    return f"{re.sub(rf', ({later}) on at [^,]+', '', before)}, {first} on at {revision}"


def run_stages(workspace: Path, root: Path, env: dict[str, str], stages: list[str], count: int,
               force: bool = False) -> None:
    """`dvc repro -s` each stage in turn (forced: run even where its inputs did not change, so that every stage
    named is measured again), then evaluate's unsampled part where evaluate ran."""
    times = root / "times.jsonl"
    for stage in stages:
        run(["dvc", "repro", *(["-f"] if force else []), "-s", stage], workspace, env)
        done = json.loads(times.read_text().splitlines()[-1])
        print(f"N={count} {stage:<9} {done['cpu_seconds']:8.1f} s CPU {done['seconds']:8.1f} s wall  peak RSS "
              f"{done['peak_rss_mib']:7.0f} MiB  load {done['load_average'][1]:.1f}", flush=True)
    if "evaluate" in stages:
        time_unsampled_evaluate(workspace, root, env)


def time_unsampled_evaluate(workspace: Path, root: Path, env: dict[str, str]) -> None:
    """evaluate once more with one sampled query, timed as UNSAMPLED (growth_fit.split_evaluate). The first run's
    query counts are kept first (queries.json): the second run overwrites its metrics."""
    report = json.loads((workspace / "metrics" / "evaluate.json").read_text(encoding="utf-8"))
    queries = {"queries": report["n_queries"], "sampled_queries": report["n_sampled_queries"]}
    (root / "queries.json").write_text(json.dumps(queries))
    set_params(workspace, {"evaluate.max_sampled_queries": 1})
    run(["python", "bench/dvc_scale.py", "timed", UNSAMPLED, "python", "-m", "stages.evaluate"], workspace, env)


def measured(root: Path) -> dict[str, Any]:
    """What one workspace's stages recorded (those that finished, if the run was cut short): per stage
    {seconds (wall), cpu_seconds (None where the wrapper did not record it), peak_rss_mib, failed}, and the
    machine's mean 1-minute load average over the stages' starts and ends; evaluate's query counts."""
    count = int(root.name.removeprefix("n").removesuffix("-growth"))
    times = root / "times.jsonl"
    records = [json.loads(line) for line in times.read_text().splitlines()] if times.exists() else []
    records = [r for r in records if not r.get("interrupted")]  # a part of a stage a killed run ran
    stages = {r["stage"]: {"seconds": r["seconds"], "cpu_seconds": r.get("cpu_seconds"),
                           "peak_rss_mib": r["peak_rss_mib"], "failed": r.get("returncode", 0) != 0}
              for r in records}
    loads = [load for r in records for load in r.get("load_average", [])]
    revision = root / "revision.txt"
    commit = revision.read_text().strip() if revision.exists() else "unrecorded"
    queries = root / "queries.json"
    return {"n": count, "revision": commit, "stages": stages, "load": float(np.mean(loads)) if loads else None,
            "queries": json.loads(queries.read_text()) if queries.exists() else None}


def recorded_measurements(path: Path = RECORD) -> list[dict[str, Any]]:
    """The measurements bench/results/growth.json holds (a workspace in /tmp does not outlive its machine): its
    `measurements`, or, in a record written before they were kept, its table read back (seconds to 0.1 s, peaks to
    1 MiB; the commits and loads from its note)."""
    if not path.is_file():
        return []
    result = json.loads(path.read_text(encoding="utf-8"))
    if "measurements" in result:
        return result["measurements"]
    columns, note = result["columns"], result["source"]
    counts = [int(c.split()[0].removeprefix("N=")) for c in columns if c.endswith(" CPU s")]
    out = []
    for count in counts:
        cells = {row[0]: dict(zip(columns, row)) for row in result["rows"] if row[0] in STAGES}
        stages = {stage: {"seconds": float(c[f"N={count} wall s"]), "cpu_seconds": float(c[f"N={count} CPU s"]),
                          "peak_rss_mib": float(c[f"N={count} peak MiB"]), "failed": False}
                  for stage, c in cells.items()
                  if c[f"N={count} CPU s"] not in ("—", "") and not c[f"N={count} CPU s"].endswith("(failed)")}
        commit = re.search(rf"N={count}: (\w+)[,;]", note.split("measured at the commit", 1)[-1])
        load = re.search(rf"N={count}: ([0-9.]+)", note.split("load average over", 1)[-1])
        out.append({"n": count, "revision": commit.group(1) if commit else "unrecorded", "stages": stages,
                    "load": float(load.group(1)) if load else None, "queries": None})
    return out


def print_table(columns: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(c)) for c in column) for column in zip(columns, *rows)]
    for line in [columns, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(line[:-1], widths)) + "  " + line[-1])


def main() -> None:
    import yaml

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=list(GOAL_SIZES))
    parser.add_argument("--side", type=int, default=384, help="long side of the synthetic paintings")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (kept, datasets reused)")
    parser.add_argument("--revision", default=None,
                        help="measure this commit (default: the worktree as it is; a commit is named in the results)")
    parser.add_argument("--no-record", action="store_true", help="do not write bench/results/growth.json")
    parser.add_argument("--summarise", action="store_true",
                        help="run nothing: summarise what the runs in --work measured (finished stages only)")
    # evaluate's cap changes between its two runs: report (after it) is measured again only with evaluate
    parser.add_argument("--from-stage", choices=STAGES[:STAGES.index("evaluate") + 1], default=None,
                        help="measure the workspaces in --work again from this stage on, with --revision's code")
    parser.add_argument("--keep-recorded", action="store_true",
                        help="with the sizes bench/results/growth.json holds that this run does not measure")
    args = parser.parse_args()
    if min(args.n) < 20 or args.side < 32:
        sys.exit("--n must be >= 20 (every split needs paintings) and --side >= 32 (ingest.min_side)")
    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text(encoding="utf-8"))
    gpu = gpu_projections(params)
    cap = params["evaluate"]["max_sampled_queries"]
    kept = recorded_measurements() if args.keep_recorded else []
    print("cheap training params: " + ", ".join(f"{k}={json.dumps(v)}" for k, v in CHEAP.items()), flush=True)
    if args.summarise:
        roots = sorted(args.work.glob("n*-growth"), key=lambda root: measured(root)["n"])
        rows = [measured(root) for root in roots if measured(root)["stages"]]
        report(merged(kept, rows), gpu, cap, record_it=not args.no_record)
        return
    if args.from_stage and not args.revision:
        sys.exit("--from-stage needs --revision: the commit whose code measures the stages again")
    rows = []
    for count in sorted(args.n):
        rows.append(remeasure(args.work.resolve(), count, args.revision, args.from_stage, cap) if args.from_stage
                    else measure(args.work.resolve(), count, args.side, args.revision))
        # after every N: an interrupted run keeps what it measured
        report(merged(kept, rows), gpu, cap, record_it=not args.no_record)


def measured_study_peaks(path: Path = SCORE_AT_SCALE) -> dict[str, tuple[float, str]]:
    """Peaks measured at the study's size (stage -> (MiB, basis naming the commit whose code it measured)):
    bench/score_at_scale.py's score stage."""
    if not path.is_file():
        return {}
    result = json.loads(path.read_text(encoding="utf-8"))
    commit = re.search(r"at commit (\w+)", result["source"])
    basis = f"measured at {commit.group(1) if commit else 'an unrecorded commit'}"
    return {"score": (f["peak_rss_mib"], basis) for f in result.get("figures", [])
            if f["code"] == "this commit" and f["originals"] == STUDY_ORIGINALS}


def merged(kept: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """rows, with the kept measurements of the other sizes, by N."""
    measured_now = {row["n"] for row in rows}
    return sorted([*(row for row in kept if row["n"] not in measured_now), *rows], key=lambda row: row["n"])


def report(rows: list[dict[str, Any]], gpu: dict[str, dict[str, Any]], cap: int | None, record_it: bool) -> None:
    """The table and the gaps of the measurements so far; bench/results/growth.json when record_it."""
    counts = [row["n"] for row in rows]
    summary = with_measured_peaks(summarise(rows, gpu, cap), measured_study_peaks())
    columns, lines = table(summary, counts)
    print_table(columns, lines)
    missing = gaps(summary, counts)
    print("gaps: " + ("; ".join(missing) or "none"), flush=True)
    if record_it:
        note = ("cheap training: " + ", ".join(f"{k}={json.dumps(v)}" for k, v in CHEAP.items())
                + "; GPU stages from FLOPs and ASSUMED throughput, no GPU measured; measured at the commit "
                + ", ".join(f"N={row['n']}: {row['revision']}" for row in rows)
                + "; mean 1-minute load average over the stages' starts and ends "
                + ", ".join(f"N={row['n']}: " + ("unrecorded" if row["load"] is None else f"{row['load']:.1f}")
                            for row in rows)
                + "; exponents fitted on CPU time (user + system of each stage's processes), wall time beside"
                + "; gaps: "
                + ("; ".join(missing) or "none"))
        record("growth", columns, lines, note, extra={"projection": projection(summary, counts), "measurements": rows})


if __name__ == "__main__":
    main()
