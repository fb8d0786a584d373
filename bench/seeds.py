"""How much the learning stages' metrics move with the seed, and with the machine.

In a throw-away copy of the repository (what a fresh clone holds), runs the data stages
once (`dvc repro score`: ingest, generate, describe, score), then the learning stages
(finetune, siamese, evaluate, as `python -m stages.X`) for every seed under every kernel
setting, on the same upstream outputs. Prints, per headline metric, mean ± std over the
seeds for each kernel setting and how far the settings land apart for the same seed.

A kernel setting stands in for another machine: PyTorch picks its vectorised CPU kernels by
ATEN_CPU_CAPABILITY, oneDNN (convolutions) by ONEDNN_MAX_CPU_ISA, MKL (matrix products) by
MKL_ENABLE_INSTRUCTIONS, and the thread count changes the order of parallel sums. Each
rounds floats differently, which is what makes two machines differ.

    native   this machine as it is
    avx2     AVX2 kernels everywhere, 1 thread (a laptop or an older server)
    sse      no vector extensions beyond SSE4, 1 thread (slow; differs on any x86-64)

It records in bench/results/seeds.json, besides that table, every scorer's recall@1 and pair AUC
(model, descriptor score, pHash, dHash, SSIM, fused: whichever evaluate reports) on the plain test
set and on each held-out transform, as mean ± std over the seeds under the first kernel setting
(`sets`), and issue 26's goal (`goal`): per set, the model's mean minus pHash's on the plain set and
minus the best peer's on a transform. docs/gen_tables.py renders both (bench/seeds/recall_at_1,
bench/seeds/pair_auc).

With --write-tolerance FILE it records, per metric of metrics/evaluate.json, the tolerance
a reproduction elsewhere should meet: max(largest cross-setting difference, k x seed std).
tests/e2e/test_pipeline.py compares a fresh `dvc repro` with the committed metrics within it.

Usage (about 6 minutes on 2 cores with the defaults):
    .venv/bin/python bench/seeds.py --seeds 5 [--kernels native,avx2] [-S finetune.lr=3e-4 ...]
        [--write-tolerance tests/support/reproducibility_tolerance.json] [--k 3] [--workdir DIR] [--source CHECKOUT]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from bench.results import record  # noqa: E402
from stages.common import edit_params  # noqa: E402

LEARNING_STAGES = ("finetune", "siamese", "evaluate")

KERNEL_SETTINGS: dict[str, dict[str, str]] = {
    "native": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
             "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    "sse": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
}

# Headline metrics: (files under metrics/, dotted keys inside; alternatives in order, for
# the layouts the metrics have had).
FINETUNE_FILES = ("finetune.json", "finetune/metrics.json")
SIAMESE_FILES = ("siamese.json", "siamese/metrics.json")
HEADLINE: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "finetune test top-1": (FINETUNE_FILES, ("test_accuracy",)),
    "finetune train loss": (FINETUNE_FILES, ("train_loss",)),
    "finetune best epoch": (FINETUNE_FILES, ("best_epoch",)),
    "siamese val mse": (SIAMESE_FILES, ("val_mse",)),
    "siamese best epoch": (SIAMESE_FILES, ("best_epoch",)),
    "evaluate mse": (("evaluate.json",), ("mse",)),
    "evaluate mae": (("evaluate.json",), ("mae",)),
    "evaluate r2": (("evaluate.json",), ("r2",)),
    "evaluate spearman": (("evaluate.json",), ("spearman",)),
    "evaluate pair auc": (("evaluate.json",), ("model.pair_auc", "pair_auc.model")),
    "evaluate recall@1": (("evaluate.json",), ("model.recall_at_1", "retrieval.model.recall_at_1")),
    "evaluate threshold@90% (model)": (("evaluate.json",), ("model.threshold_at_precision_90",)),
    "evaluate threshold@99% (model)": (("evaluate.json",), ("model.threshold_at_precision_99",)),
    "evaluate transformed pair auc (model)": (("evaluate.json",), ("transformed.model.pair_auc",)),
    "evaluate transformed recall@1 (model)": (("evaluate.json",), ("transformed.model.recall_at_1",)),
}


def dotted(mapping: dict[str, Any], key: str) -> Any:
    """mapping["a"]["b"] for key "a.b"; None when any part is missing."""
    for part in key.split("."):
        if not isinstance(mapping, dict) or part not in mapping:
            return None
        mapping = mapping[part]
    return mapping


def first_present(mapping: dict[str, Any], keys: tuple[str, ...]) -> tuple[str, Any]:
    """The first of `keys` that `mapping` has a number at, and the number (None if none)."""
    for key in keys:
        if isinstance(value := dotted(mapping, key), (int, float)):
            return key, value
    return keys[0], None


def copy_worktree(source: Path, target: Path) -> None:
    """The files git tracks or would track in `source` (a fresh clone: no DVC cache, no outputs)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            cwd=source, capture_output=True, text=True, check=True).stdout
    for name in filter(None, listed.split("\0")):
        if (source / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, target / name)


def base_env() -> dict[str, str]:
    # dvc runs `python -m stages.X` through the shell: it must find this interpreter first.
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                DVC_NO_ANALYTICS="1", OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
                GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@localhost",
                GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@localhost")


def run(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(args)} failed in {cwd}:\n{result.stderr[-3000:]}")


def set_params(repo: Path, overrides: dict[str, Any]) -> None:
    """Write `overrides` (dotted keys, like `dvc exp run -S`) into the copy's params.yaml."""
    edit_params(repo / "params.yaml", overrides)  # as DVC writes it: every other line kept


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`-S key=value` (dotted keys, YAML values), as `dvc exp run -S`."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            sys.exit(f"-S {pair}: expected key=value")
        overrides[key] = yaml.safe_load(value)
    return overrides


def prepare(source: Path, workdir: Path, overrides: dict[str, Any]) -> Path:
    """A fresh-clone copy of `source` with the data stages run once."""
    repo = workdir / "repo"
    repo.mkdir(parents=True)
    copy_worktree(source, repo)
    env = base_env()
    run(["git", "init", "-q"], repo, env)
    set_params(repo, overrides)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-q", "-m", "bench snapshot"], repo, env)
    started = time.perf_counter()
    run(["dvc", "repro", "score"], repo, env)
    print(f"data stages (once): {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return repo


# Per scorer, on the plain test set (metrics/evaluate.json) and on each held-out transform
# (metrics/evaluate/transformed.csv, its `all` rows pooling them): the figures issue 26's goal is
# stated in. docs/gen_tables.py renders them (tables `bench/seeds/<figure>`).
TRANSFORMED_PLOT = Path("evaluate") / "transformed.csv"
FIGURES = ("recall_at_1", "pair_auc")
PLAIN = "plain"
MODEL = "model"
# The peer the model must match on the plain set; on a transform, every peer. fused is none: it combines the
# model's own score with pHash's.
PLAIN_GOAL_PEER = "phash"
NOT_PEERS = frozenset({MODEL, "fused"})

# {set: {scorer: {figure: value}}}: one run's figures per set (plain, each transform, all).
SetFigures = dict[str, dict[str, dict[str, float | None]]]

# The key each headline metric was found at, for the tolerance file.
METRIC_KEYS: dict[str, str] = {}


def learn(repo: Path, seed: int, kernel: str) -> tuple[dict[str, float | None], SetFigures]:
    """finetune, siamese, evaluate for `seed` under `kernel`; the headline metrics and every scorer's figures."""
    set_params(repo, {"seed": seed})
    env = {**base_env(), **KERNEL_SETTINGS[kernel]}
    for stage in LEARNING_STAGES:
        run([sys.executable, "-m", f"stages.{stage}"], repo, env)
    row = {}
    for name, (files, keys) in HEADLINE.items():
        found = [path for path in (repo / "metrics" / file for file in files) if path.is_file()]
        report = json.loads(found[0].read_text(encoding="utf-8")) if found else {}
        key, value = first_present(report, keys)
        METRIC_KEYS[name] = key
        row[name] = float(value) if value is not None else None
    return row, scorer_figures(repo / "metrics")


def number(value: Any) -> float | None:
    """A figure as a float; None for a missing, empty or non-numeric one (a CSV cell, a JSON null)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if value != value else value


def scorer_figures(metrics: Path) -> SetFigures:
    """The plain set's figures of every scorer in evaluate.json, then every transform's of transformed.csv."""
    path = metrics / "evaluate.json"
    report = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    plain = {scorer: {figure: number(block.get(figure)) for figure in FIGURES}
             for scorer, block in report.items() if isinstance(block, dict) and "recall_at_1" in block}
    return {PLAIN: plain, **transformed_figures(metrics / TRANSFORMED_PLOT)}


def transformed_figures(path: Path) -> SetFigures:
    """{transform: {scorer: {recall_at_1, pair_auc}}} from a metrics/evaluate/transformed.csv ({} if absent)."""
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    figures: SetFigures = {}
    for row in rows:
        by_scorer = figures.setdefault(row["transform"], {})
        by_scorer[row["scorer"]] = {figure: number(row.get(figure)) for figure in FIGURES}
    return figures


def spread_by_set(runs: list[SetFigures]) -> dict[str, dict[str, dict[str, dict[str, float] | None]]]:
    """Per set, scorer and figure: mean, std and number of runs over `runs` (None where no run has it)."""
    values: dict[str, dict[str, dict[str, list[float | None]]]] = {}
    for figures in runs:
        for set_name, scorers in figures.items():
            for scorer, by_figure in scorers.items():
                for figure, value in by_figure.items():
                    values.setdefault(set_name, {}).setdefault(scorer, {}).setdefault(figure, []).append(value)
    summary = {}
    for set_name, scorers in values.items():
        summary[set_name] = {}
        for scorer, by_figure in sorted(scorers.items(), key=lambda item: item[0] != MODEL):  # the model first
            summary[set_name][scorer] = {}
            for figure, found in by_figure.items():
                stats = spread(found)
                summary[set_name][scorer][figure] = None if stats is None else {
                    "mean": stats[0], "std": stats[1], "n": sum(v is not None for v in found)}
    return summary


def goal(sets: dict[str, dict[str, dict[str, dict[str, float] | None]]]) -> dict[str, Any]:
    """Issue 26's goal per set and figure: the model's mean minus the mean of the peer it must match
    (pHash on the plain set, the best peer on a transform); `met` when no gap is negative."""
    gaps: dict[str, dict[str, dict[str, Any] | None]] = {}
    for set_name, scorers in sets.items():
        gaps[set_name] = {}
        for figure in FIGURES:
            model = (scorers.get(MODEL) or {}).get(figure)
            peers = {scorer: by_figure[figure] for scorer, by_figure in scorers.items()
                     if scorer not in NOT_PEERS and by_figure.get(figure) is not None
                     and (set_name != PLAIN or scorer == PLAIN_GOAL_PEER)}
            if model is None or not peers:
                gaps[set_name][figure] = None
                continue
            peer = max(peers, key=lambda scorer: peers[scorer]["mean"])
            gap = model["mean"] - peers[peer]["mean"]
            gaps[set_name][figure] = {"peer": peer, "model": model["mean"], "peer_mean": peers[peer]["mean"],
                                      "gap": gap, "met": gap >= 0}
    return {"met": all(entry["met"] for by_figure in gaps.values() for entry in by_figure.values() if entry),
            "sets": gaps}


def spread(values: list[float | None]) -> tuple[float, float] | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    return statistics.fmean(present), statistics.stdev(present) if len(present) > 1 else 0.0


def summarise(results: dict[str, dict[int, dict[str, float | None]]], k: float) -> dict[str, dict[str, float]]:
    """Per metric: mean and std over seeds (pooled over settings), the largest and mean
    cross-setting difference for one seed, and the tolerance max(largest diff, k x std)."""
    kernels = list(results)
    seeds = list(results[kernels[0]])
    summary = {}
    for name in dict.fromkeys(name for seed_rows in results[kernels[0]].values() for name in seed_rows):
        per_kernel = {kernel: spread([results[kernel][s].get(name) for s in seeds]) for kernel in kernels}
        if any(v is None for v in per_kernel.values()):
            continue
        # Pooled within-setting std: the seed spread, not the gap between settings.
        std = statistics.fmean(sd**2 for _, sd in per_kernel.values()) ** 0.5
        diffs = [abs(results[a][s][name] - results[kernels[0]][s][name])
                 for a in kernels[1:] for s in seeds
                 if results[a][s].get(name) is not None and results[kernels[0]][s].get(name) is not None]
        summary[name] = {
            **{f"{kernel}_mean": mean for kernel, (mean, _) in per_kernel.items()},
            **{f"{kernel}_std": sd for kernel, (_, sd) in per_kernel.items()},
            "seed_std": std,
            "cross_kernel_mean": statistics.fmean(diffs) if diffs else 0.0,
            "cross_kernel_max": max(diffs, default=0.0),
            "tolerance": max(max(diffs, default=0.0), k * std),
        }
    return summary


def print_report(summary: dict[str, dict[str, float]], kernels: list[str], n_seeds: int) -> None:
    header = f"{'metric':<44}" + "".join(f"{kernel + ' mean ± std':>26}" for kernel in kernels)
    header += f"{'|Δ kernel| mean/max':>24}{'tolerance':>11}"
    print(f"\n{n_seeds} seeds; Δ kernel: |{' - '.join(kernels)}| for the same seed")
    print(header)
    for name, row in summary.items():
        line = f"{name:<44}" + "".join(f"{row[f'{k}_mean']:>15.4f} ± {row[f'{k}_std']:<8.4f}" for k in kernels)
        line += f"{row['cross_kernel_mean']:>12.4f} / {row['cross_kernel_max']:<9.4f}{row['tolerance']:>9.4f}"
        print(line)


def print_goal(reached: dict[str, Any]) -> None:
    print("\nissue 26's goal, model mean - peer mean (pHash on the plain set, the best peer on a transform):")
    for set_name, by_figure in reached["sets"].items():
        cells = [f"{figure} {entry['gap']:+.3f} ({entry['peer']})" for figure, entry in by_figure.items() if entry]
        print(f"  {set_name:<12}" + "  ".join(cells))
    print("  met" if reached["met"] else "  not met")


def write_tolerance(path: Path, summary: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    evaluate = {METRIC_KEYS[name]: {key: round(value, 6) for key, value in row.items()}
                for name, row in summary.items() if name in HEADLINE and HEADLINE[name][0] == ("evaluate.json",)}
    payload = {
        "about": ("How far metrics/evaluate.json may land from the committed one when the pipeline is "
                  "reproduced on another machine: per dotted key, tolerance = max(largest difference "
                  "between kernel settings for one seed, k x std over seeds). Written by bench/seeds.py; "
                  "read by tests/e2e/test_pipeline.py."),
        "command": " ".join(["python", "bench/seeds.py", *sys.argv[1:]]),
        "seeds": args.seeds,
        "kernels": args.kernels.split(","),
        "k": args.k,
        "overrides": args.set,
        "evaluate": evaluate,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {path}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1")
    parser.add_argument(
        "--kernels",
        default="native,avx2",
        help=f"comma-separated, first is the reference: {', '.join(KERNEL_SETTINGS)}",
    )
    parser.add_argument(
        "-S", "--set", action="append", default=[], metavar="KEY=VALUE", help="params.yaml override, as dvc exp run -S"
    )
    parser.add_argument(
        "--k", type=float, default=3.0, help="tolerance in seed standard deviations (at least the cross-kernel gap)"
    )
    parser.add_argument("--write-tolerance", type=Path, default=None, help="write the evaluate tolerances as JSON here")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the copy here instead of a temp dir")
    parser.add_argument("--source", type=Path, default=REPO_ROOT, help="the git checkout to copy (default: this one)")
    args = parser.parse_args()
    kernels = args.kernels.split(",")
    if unknown := set(kernels) - set(KERNEL_SETTINGS):
        sys.exit(f"--kernels: unknown {sorted(unknown)}; known: {', '.join(KERNEL_SETTINGS)}")

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="artsim-seeds-") as scratch:
        workdir = args.workdir or Path(scratch)
        repo = prepare(args.source.resolve(), workdir, parse_overrides(args.set))
        results: dict[str, dict[int, dict[str, float | None]]] = {kernel: {} for kernel in kernels}
        figures: list[SetFigures] = []  # the reference kernel's, one per seed
        for seed in range(args.seeds):
            for kernel in kernels:
                run_started = time.perf_counter()
                results[kernel][seed], seed_figures = learn(repo, seed, kernel)
                if kernel == kernels[0]:
                    figures.append(seed_figures)
                print(
                    f"seed {seed} {kernel:<6} {time.perf_counter() - run_started:5.0f} s  "
                    + "  ".join(
                        f"{name.split(' ', 1)[1]}={value:.4g}"
                        for name, value in results[kernel][seed].items()
                        if value is not None
                    ),
                    file=sys.stderr,
                )
    summary = summarise(results, args.k)
    print_report(summary, kernels, args.seeds)
    sets = spread_by_set(figures)
    print_goal(goal(sets))
    print(f"\ntotal {time.perf_counter() - started:.0f} s", file=sys.stderr)
    if args.write_tolerance:
        write_tolerance(args.write_tolerance, summary, args)
    record("seeds", ["metric", *kernels, f"|{' − '.join(kernels)}| mean / max", "tolerance"], [
        [name, *(f"{row[f'{k}_mean']:.4f} ± {row[f'{k}_std']:.4f}" for k in kernels),
         f"{row['cross_kernel_mean']:.4f} / {row['cross_kernel_max']:.4f}", f"{row['tolerance']:.4f}"]
        for name, row in summary.items()], note=f"mean ± std over seeds 0–{args.seeds - 1} per kernel setting",
        extra={"seeds": list(range(args.seeds)), "kernel": kernels[0], "sets": sets, "goal": goal(sets)})

if __name__ == "__main__":
    main()
