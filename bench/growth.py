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
- GPU stages (SDXL generation, finetune, siamese at params.yaml's own image sizes and epochs): FLOPs
  per image (ResNet-50 counted on the meta device; the SDXL UNet's figure an ASSUMPTION, see
  SDXL_UNET_TFLOP) over ASSUMED sustained GPU throughput (bench/generate_sdxl.py's PEAKS and
  EFFICIENCY). No GPU figure is measured on this machine.

Goals (issue 28): every exponent <= 1.1, peak RSS <= 4 GB at N=4,000 and flat, the whole study in
one day on one 8-GPU node. Writes bench/results/growth.json (after every N) and prints the table.

    nice -n 10 .venv/bin/python bench/growth.py --n 500 1000 2000 4000 --work /tmp/growth
    nice -n 10 .venv/bin/python bench/growth.py --n 50 --work /tmp/growth --no-record   # a smoke run
    .venv/bin/python bench/growth.py --work /tmp/growth --summarise   # the table again, from what was measured
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
from dvc_scale import CACHE_TYPES, STRENGTHS, build_dataset, environment, make_workspace, run
from scale_retrieval import derive_variants
from seeds import set_params

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.results import record  # noqa: E402

STUDY_ORIGINALS = 81_444
STAGES = ["params", "ingest", "generate", "describe", "score", "finetune", "siamese", "index", "evaluate", "report"]
# Cheap training so that the CPU run measures growth, not learning; the GPU projection uses params.yaml's own.
CHEAP = {
    "finetune.epochs": 1,
    "siamese.epochs": 1,
    "siamese.train_layers": ["layer4"],  # trunk frozen below layer4: the feature cache in use
    "finetune.image_size": 64,
    "siamese.image_size": 64,
    "report.pdf": False,  # the HTML report only: WeasyPrint's PDF needs system libraries
}
GPU_STAGES = ("generate", "finetune", "siamese")
GPUS_PER_NODE = 8
DAY_S = 86_400.0
# ASSUMPTIONS, not measurements (python bench/generate_sdxl.py --paper counts them from a model's configs):
SDXL_UNET_TFLOP = 6.0  # one SDXL-class UNet evaluation at 1024 px (a 128 x 128 latent)
SDXL_VAE_TFLOP = 4.0  # VAE encode + decode of one 1024 px variant
RESNET_EFFICIENCY = 0.25  # of the fp16 peak a ResNet-50 sustains at 64-96 px (small images: low utilisation)
GPU = "H100 SXM"
GOAL_SIZES = (500, 1000, 2000, 4000)
PEAK_FLAT = 1.25  # a peak that grows more than this from the smallest N to the largest is not flat


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
    for stage in STAGES:
        run(["dvc", "repro", "-s", stage], workspace, env)
        done = json.loads(times.read_text().splitlines()[-1])
        print(f"N={count} {stage:<9} {done['cpu_seconds']:8.1f} s CPU {done['seconds']:8.1f} s wall  peak RSS "
              f"{done['peak_rss_mib']:7.0f} MiB  load {done['load_average'][1]:.1f}", flush=True)
    return measured(root)


def measured(root: Path) -> dict[str, Any]:
    """What one workspace's stages recorded (those that finished, if the run was cut short): per stage
    {seconds (wall), cpu_seconds (None where the wrapper did not record it), peak_rss_mib, failed}, and the
    machine's mean 1-minute load average over the stages' starts and ends."""
    count = int(root.name.removeprefix("n").removesuffix("-growth"))
    times = root / "times.jsonl"
    records = [json.loads(line) for line in times.read_text().splitlines()] if times.exists() else []
    stages = {r["stage"]: {"seconds": r["seconds"], "cpu_seconds": r.get("cpu_seconds"),
                           "peak_rss_mib": r["peak_rss_mib"], "failed": r.get("returncode", 0) != 0}
              for r in records}
    loads = [load for r in records for load in r.get("load_average", [])]
    revision = root / "revision.txt"
    commit = revision.read_text().strip() if revision.exists() else "unrecorded"
    return {"n": count, "revision": commit, "stages": stages, "load": float(np.mean(loads)) if loads else None}


# --- fit and projection -------------------------------------------------------------------------

def exponent(counts: list[int], seconds: list[float]) -> float | None:
    """k of seconds ~ N^k, least squares on log-log; None with fewer than two sizes."""
    if len(counts) < 2:
        return None
    return float(np.polyfit(np.log(counts), np.log(np.maximum(seconds, 1e-3)), 1)[0])


def cpu_projection(counts: list[int], seconds: list[float], k: float | None) -> float:
    """Seconds at the study's scale from the largest measured N, never below linear growth: on shared cores
    the times are noisy, and a marginal cost between two sizes can come out near zero or negative."""
    largest = int(np.argmax(counts))
    return float(seconds[largest] * (STUDY_ORIGINALS / counts[largest]) ** max(k or 1.0, 1.0))


def resnet50_tflop(image_size: int) -> float:
    """One ResNet-50 forward at image_size px, counted on the meta device (no weights)."""
    import torch
    import torchvision
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = torchvision.models.resnet50()
        with FlopCounterMode(display=False) as counter:
            model(torch.empty(1, 3, image_size, image_size))
    return counter.get_total_flops() / 1e12


def gpu_projections(params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Seconds on one GPU for each GPU stage at the study's scale, from FLOPs and assumed throughput."""
    from generate_sdxl import EFFICIENCY, PEAKS

    peak = PEAKS[GPU]
    generate, finetune, siamese = params["generate"], params["finetune"], params["siamese"]
    unet_evaluations = sum(int(generate["steps"] * s) * 2 for s in STRENGTHS)  # classifier-free guidance: x2
    sdxl = STUDY_ORIGINALS * (unet_evaluations * SDXL_UNET_TFLOP + len(STRENGTHS) * SDXL_VAE_TFLOP)
    variants = STUDY_ORIGINALS * len(STRENGTHS)
    pairs = variants * (1 + params["score"]["negatives"])
    # training: forward + backward ~ 3 forwards; siamese: both images of a pair; every original trains (an upper bound)
    fine = 3 * resnet50_tflop(finetune["image_size"]) * STUDY_ORIGINALS * finetune["epochs"]
    twin = 3 * resnet50_tflop(siamese["image_size"]) * 2 * pairs * siamese["epochs"]
    return {
        "generate": {"tflop": sdxl, "seconds": sdxl / (peak * EFFICIENCY),
                     "basis": f"{unet_evaluations} UNet x {SDXL_UNET_TFLOP} TFLOP + VAE per original at "
                              f"{EFFICIENCY:.0%} of {GPU} {peak:.0f} TFLOP/s (assumed)"},
        "finetune": {"tflop": fine, "seconds": fine / (peak * RESNET_EFFICIENCY),
                     "basis": f"ResNet-50 {finetune['image_size']} px x {finetune['epochs']} epochs at "
                              f"{RESNET_EFFICIENCY:.0%} of {GPU} (assumed)"},
        "siamese": {"tflop": twin, "seconds": twin / (peak * RESNET_EFFICIENCY),
                    "basis": f"ResNet-50 {siamese['image_size']} px, {pairs:,} pairs x 2 images x "
                             f"{siamese['epochs']} epochs at {RESNET_EFFICIENCY:.0%} of {GPU} (assumed)"},
    }


def summarise(rows: list[dict[str, Any]], gpu: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per stage: CPU and wall times and peaks by N, the exponent fitted on CPU time (other jobs on the
    cores stretch wall time, hardly CPU time) and on wall time beside, the projection at the study's scale
    (from CPU time) and its basis."""
    summary = []
    for stage in STAGES:
        # a stage that failed is shown (its time a lower bound) but not fitted
        failed = {row["n"]: row["stages"][stage] for row in rows if row["stages"].get(stage, {}).get("failed")}
        points = [(row["n"], row["stages"][stage]) for row in rows
                  if stage in row["stages"] and row["n"] not in failed]
        timed_cpu = [(n, m) for n, m in points if m["cpu_seconds"] is not None]
        counts, cpu_seconds = [n for n, _ in timed_cpu], [m["cpu_seconds"] for _, m in timed_cpu]
        k = exponent(counts, cpu_seconds)
        # with a failed size's time as a lower bound: a lower bound on the exponent where it is the largest size
        lower = [(n, m["cpu_seconds"]) for n, m in failed.items() if m["cpu_seconds"] is not None]
        bound = exponent([*counts, *(n for n, _ in lower)], [*cpu_seconds, *(s for _, s in lower)]) if lower else None
        cpu = cpu_projection(counts, cpu_seconds, k) if counts else math.nan
        projected, basis = cpu, "CPU time from the fit (one core's worth)"
        if k is None and counts:
            basis = f"CPU time at N={counts[0]} only, linear growth assumed (one core's worth)"
        if stage in gpu:
            projected, basis = gpu[stage]["seconds"] / GPUS_PER_NODE, f"GPU / {GPUS_PER_NODE}: {gpu[stage]['basis']}"
        summary.append({"stage": stage, "cpu_seconds": dict(zip(counts, cpu_seconds)), "failed": failed,
                        "seconds": {n: m["seconds"] for n, m in points},
                        "peak_rss_mib": {n: m["peak_rss_mib"] for n, m in points}, "exponent": k,
                        "wall_exponent": exponent([n for n, _ in points], [m["seconds"] for _, m in points]),
                        "exponent_at_least": bound if lower and max(failed) > max(counts, default=0) else None,
                        "cpu_projection_s": cpu, "projection_s": projected, "basis": basis})
    return summary


def duration(seconds: float) -> str:
    if math.isnan(seconds):
        return "n/a"
    return f"{seconds / 3600:.1f} h" if seconds >= 360 else f"{seconds:.0f} s"


def exponent_cell(entry: dict[str, Any], key: str = "exponent") -> str:
    if key == "exponent" and entry["exponent_at_least"] is not None:
        return f">={entry['exponent_at_least']:.2f}"
    return "n/a" if entry[key] is None else f"{entry[key]:.2f}"


def time_cell(entry: dict[str, Any], count: int, key: str) -> str:
    if count in entry["failed"]:
        seconds = entry["failed"][count][key]
        return "— (failed)" if seconds is None else f">{seconds:.0f} (failed)"
    return f"{entry[key][count]:.1f}" if count in entry[key] else "—"


def table(summary: list[dict[str, Any]], counts: list[int]) -> tuple[list[str], list[list[str]]]:
    columns = ["stage", *(f"N={n} CPU s" for n in counts), *(f"N={n} wall s" for n in counts),
               *(f"N={n} peak MiB" for n in counts), "exponent (CPU)", "exponent (wall)",
               f"projected at {STUDY_ORIGINALS:,}", "basis"]
    rows = []
    for entry in summary:
        rows.append([entry["stage"], *(time_cell(entry, n, "cpu_seconds") for n in counts),
                     *(time_cell(entry, n, "seconds") for n in counts),
                     *(f"{entry['peak_rss_mib'][n]:.0f}" if n in entry["peak_rss_mib"] else "—" for n in counts),
                     exponent_cell(entry), exponent_cell(entry, "wall_exponent"), duration(entry["projection_s"]),
                     entry["basis"]])
    total = sum(entry["projection_s"] for entry in summary)
    verdict = ("not every stage measured" if math.isnan(total) else
               f"one {GPUS_PER_NODE}-GPU node: {'fits' if total <= DAY_S else 'does NOT fit'} in one day")
    rows.append(["total", *([""] * (3 * len(counts) + 2)), duration(total), verdict])
    return columns, rows


def stage_gaps(entry: dict[str, Any], counts: list[int]) -> list[str]:
    """Where one stage misses the goal (exponent <= 1.1, peak RSS <= 4 GB and flat) or was not measured."""
    out = []
    k, peaks = entry["exponent"], entry["peak_rss_mib"]
    for count in entry["failed"]:
        out.append(f"failed at N={count} (after {entry['failed'][count]['seconds']:.0f} s)")
    unmeasured = [n for n in counts if n not in entry["seconds"] and n not in entry["failed"]]
    if unmeasured:
        out.append(f"not run at N={', '.join(map(str, unmeasured))}")
    if k is not None and k > 1.1:
        out.append(f"exponent {k:.2f} > 1.1")
    if max(peaks.values(), default=0.0) > 4096:
        out.append(f"peak RSS {max(peaks.values()):.0f} MiB > 4 GB")
    if len(peaks) > 1 and peaks[max(peaks)] > PEAK_FLAT * peaks[min(peaks)]:
        out.append(f"peak RSS not flat, {peaks[min(peaks)]:.0f} MiB at N={min(peaks)} to "
                   f"{peaks[max(peaks)]:.0f} MiB at N={max(peaks)}")
    return out


def gaps(summary: list[dict[str, Any]], counts: list[int]) -> list[str]:
    out = [f"{entry['stage']}: {gap}" for entry in summary for gap in stage_gaps(entry, counts)]
    missing = [f"{n:,}" for n in GOAL_SIZES if n not in counts]
    if missing:
        out.append(f"the goal's N={' and '.join(missing)} not run")
    return out


def projection(summary: list[dict[str, Any]], counts: list[int]) -> dict[str, Any]:
    """The figures the README's projection view renders: per stage its exponent, peak at its largest N,
    projected seconds at the study's scale (and on what), and its gaps to the goal; the total."""
    stages = [{"stage": entry["stage"], "exponent": entry["exponent"],
               "peak_at_n": max(entry["peak_rss_mib"], default=None),
               "peak_rss_mib": max(entry["peak_rss_mib"].items(), default=(None, None))[1],
               "projection_s": None if math.isnan(entry["projection_s"]) else entry["projection_s"],
               "on": f"{GPUS_PER_NODE} GPUs" if entry["stage"] in GPU_STAGES else "1 CPU core",
               "gaps": stage_gaps(entry, counts)} for entry in summary]
    total = sum(entry["projection_s"] for entry in summary)
    return {"study_originals": STUDY_ORIGINALS, "stages": stages,
            "node": f"one {GPUS_PER_NODE}-GPU node", "total_s": None if math.isnan(total) else total,
            "fits_in_a_day": None if math.isnan(total) else total <= DAY_S,
            "sizes_not_run": [n for n in GOAL_SIZES if n not in counts]}


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
    args = parser.parse_args()
    if min(args.n) < 20 or args.side < 32:
        sys.exit("--n must be >= 20 (every split needs paintings) and --side >= 32 (ingest.min_side)")
    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text(encoding="utf-8"))
    gpu = gpu_projections(params)
    print("cheap training params: " + ", ".join(f"{k}={json.dumps(v)}" for k, v in CHEAP.items()), flush=True)
    if args.summarise:
        roots = sorted(args.work.glob("n*-growth"), key=lambda root: measured(root)["n"])
        report([measured(root) for root in roots if measured(root)["stages"]], gpu, record_it=not args.no_record)
        return
    rows = []
    for count in sorted(args.n):
        rows.append(measure(args.work.resolve(), count, args.side, args.revision))
        report(rows, gpu, record_it=not args.no_record)  # after every N: an interrupted run keeps what it measured


def report(rows: list[dict[str, Any]], gpu: dict[str, dict[str, Any]], record_it: bool) -> None:
    """The table and the gaps of the measurements so far; bench/results/growth.json when record_it."""
    counts = [row["n"] for row in rows]
    summary = summarise(rows, gpu)
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
        record("growth", columns, lines, note, extra={"projection": projection(summary, counts)})


if __name__ == "__main__":
    main()
