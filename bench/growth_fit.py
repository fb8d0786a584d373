"""The fit and the projection of bench/growth.py's measurements (see its docstring): per stage the exponent of
CPU time ~ N^k, the time at the study's scale (CPU stages from the fit, GPU stages from FLOPs and assumed
throughput, evaluate in its two parts), the table and the gaps to the goals of issue 28."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from dvc_scale import STRENGTHS

STUDY_ORIGINALS = 81_444
STAGES = ["params", "ingest", "generate", "describe", "score", "finetune", "siamese", "index", "evaluate", "report"]
# evaluate again with one sampled query (evaluate.max_sampled_queries=1): the part of it every held-out query costs
# (embeddings, pair scores, shortlists), apart from the part params.yaml's cap on sampled queries bounds (SSIM's
# ranks, the transformed set). A part of evaluate: shown, not added to the total.
UNSAMPLED = "evaluate_unsampled"
GPU_STAGES = ("generate", "finetune", "siamese")
GPUS_PER_NODE = 8
DAY_S = 86_400.0
# ASSUMPTIONS, not measurements (python bench/generate_sdxl.py --paper counts them from a model's configs):
SDXL_UNET_TFLOP = 6.0  # one SDXL-class UNet evaluation at 1024 px (a 128 x 128 latent)
SDXL_VAE_TFLOP = 4.0  # VAE encode + decode of one 1024 px variant
RESNET_EFFICIENCY = 0.25  # of the fp16 peak a ResNet-50 sustains at 64-96 px (small images: low utilisation)
GPU = "H100 SXM"
COMPUTE_ONLY = "; compute only, decoding the images not counted"
GOAL_SIZES = (500, 1000, 2000, 4000)
PEAK_FLAT = 1.25  # a peak that grows more than this from the smallest N to the largest is not flat


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
                              f"{RESNET_EFFICIENCY:.0%} of {GPU} (assumed){COMPUTE_ONLY}"},
        "siamese": {"tflop": twin, "seconds": twin / (peak * RESNET_EFFICIENCY),
                    "basis": f"ResNet-50 {siamese['image_size']} px, {pairs:,} pairs x 2 images x "
                             f"{siamese['epochs']} epochs at {RESNET_EFFICIENCY:.0%} of {GPU} (assumed){COMPUTE_ONLY}"},
    }


def summarise(rows: list[dict[str, Any]], gpu: dict[str, dict[str, Any]],
              sampled_cap: int | None = None) -> list[dict[str, Any]]:
    """Per stage: CPU and wall times and peaks by N, the exponent fitted on CPU time (other jobs on the
    cores stretch wall time, hardly CPU time) and on wall time beside, the projection at the study's scale
    (from CPU time) and its basis; evaluate's in two parts where UNSAMPLED was measured (see `split_evaluate`,
    sampled_cap: params.yaml's evaluate.max_sampled_queries, None for all)."""
    summary = []
    for stage in [*STAGES, UNSAMPLED]:
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
    if not summary[-1]["cpu_seconds"]:
        return summary[:-1]
    split_evaluate(summary, rows, sampled_cap)
    summary[-1]["basis"] = "a part of evaluate (one sampled query), not added to the total: " + summary[-1]["basis"]
    return summary


def split_evaluate(summary: list[dict[str, Any]], rows: list[dict[str, Any]], sampled_cap: int | None) -> None:
    """evaluate's projection in two parts. The sampled queries (SSIM's ranks, the transformed set) grow with N only
    up to params.yaml's cap, so a straight line through sizes below it overstates the study. Its unsampled part
    (UNSAMPLED's own projection) grows with every query; the sampled part (evaluate minus UNSAMPLED, at the largest
    N both were measured) costs the same per sampled query at any N and is counted for the study's sampled queries:
    its queries (held-out variants, in proportion to N) up to the cap."""
    by_stage = {entry["stage"]: entry for entry in summary}
    whole, part = by_stage["evaluate"], by_stage[UNSAMPLED]
    both = [row for row in rows if row.get("queries") and row["n"] in whole["cpu_seconds"]
            and row["n"] in part["cpu_seconds"]]
    if not both:
        return
    row = max(both, key=lambda r: r["n"])
    count, queries = row["n"], row["queries"]
    sampled_s = max(whole["cpu_seconds"][count] - part["cpu_seconds"][count], 0.0)
    per_query = sampled_s / max(queries["sampled_queries"] - 1, 1)  # UNSAMPLED still samples one
    study_queries = queries["queries"] * STUDY_ORIGINALS / count
    study_sampled = study_queries if sampled_cap is None else min(study_queries, sampled_cap)
    whole["projection_s"] = part["projection_s"] + per_query * study_sampled
    whole["basis"] = (f"unsampled part from its fit ({duration(part['projection_s'])}) + {per_query:.2f} CPU s per "
                      f"sampled query (N={count:,}) x {study_sampled:,.0f} sampled of {study_queries:,.0f} queries")


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
    total = sum(entry["projection_s"] for entry in summary if entry["stage"] in STAGES)
    verdict = ("not every stage measured" if math.isnan(total) else
               f"one {GPUS_PER_NODE}-GPU node: {'fits' if total <= DAY_S else 'does NOT fit'} in one day")
    rows.append(["total", *([""] * (3 * len(counts) + 2)), duration(total), verdict])
    return columns, rows


def peak_at_study(entry: dict[str, Any]) -> tuple[float | None, str | None]:
    """Peak MiB at the study's scale and its basis: measured there where a bench did (the entry's
    `measured_peak_at_study`, see `with_measured_peaks`, its basis saying so); else (basis None) the largest
    measured, plus the growth per original between the smallest and the largest N (never negative) for the
    originals beyond; None with fewer than two sizes."""
    if entry.get("measured_peak_at_study") is not None:
        return entry["measured_peak_at_study"]
    peaks = entry["peak_rss_mib"]
    if len(peaks) < 2:
        return None, None
    low, high = min(peaks), max(peaks)
    per_original = max(peaks[high] - peaks[low], 0.0) / (high - low)
    return peaks[high] + per_original * (STUDY_ORIGINALS - high), None


def with_measured_peaks(summary: list[dict[str, Any]], measured: dict[str, tuple[float, str]]
                        ) -> list[dict[str, Any]]:
    """The summary with the peaks a bench measured at the study's scale (stage -> (MiB, its basis: which code it
    measured)), which replace the line."""
    return [{**entry, "measured_peak_at_study": measured.get(entry["stage"])} for entry in summary]


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
    at_study, basis = peak_at_study(entry)
    if at_study is not None and at_study > 4096:
        out.append(f"peak RSS {at_study / 1024:.1f} GB > 4 GB at {STUDY_ORIGINALS:,} ({basis or 'linear in N'})")
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
               **dict(zip(("peak_at_study_mib", "peak_at_study_basis"), peak_at_study(entry))),
               "projection_s": None if math.isnan(entry["projection_s"]) else entry["projection_s"],
               "on": f"{GPUS_PER_NODE} GPUs" if entry["stage"] in GPU_STAGES else "1 CPU core",
               "gaps": stage_gaps(entry, counts)} for entry in summary]
    total = sum(entry["projection_s"] for entry in summary if entry["stage"] in STAGES)
    return {"study_originals": STUDY_ORIGINALS, "stages": stages,
            "node": f"one {GPUS_PER_NODE}-GPU node", "total_s": None if math.isnan(total) else total,
            "fits_in_a_day": None if math.isnan(total) else total <= DAY_S,
            "sizes_not_run": [n for n in GOAL_SIZES if n not in counts]}


