"""Robust by training (issue 26 §4): what each training part buys on the sample.

A fresh-clone copy of this checkout runs the data stages and finetune once (`dvc repro
score finetune`); then, per variant (params.yaml siamese overrides on top of this checkout's
defaults), the siamese and evaluate stages. Per variant it keeps the headline figures
(metrics/headline.json: MSE, MAE, R², recall@1 and pair AUC of the model) and, per held-out
transform of metrics/evaluate/transformed.csv, the model's recall@1 beside the best peer's.

Writes bench/results/robust_training.json (the variants as rows).

Usage: python bench/robust_training.py [--variants main,alter,queue,spread,all_on,all_on_96]
       [--workdir DIR] [--seed 42]
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from bench.results import record  # noqa: E402
from bench.seeds import base_env, copy_worktree, run, set_params  # noqa: E402

MODEL = "model"
# The siamese settings main ships with: every variant starts from them.
MAIN = {"siamese.augment_prob": 0.0, "siamese.rank_queue": 0, "siamese.spread_weight": 0.0,
        "siamese.image_size": 64}
ALL_ON = {"siamese.augment_prob": 0.5, "siamese.rank_queue": 256, "siamese.spread_weight": 0.05}
VARIANTS: dict[str, dict[str, Any]] = {
    "main": {},
    "alter": {"siamese.augment_prob": 0.5},
    "queue": {"siamese.rank_queue": 256},
    "spread": {"siamese.spread_weight": 0.05},
    "all_on": ALL_ON,
    "all_on_96": {**ALL_ON, "siamese.image_size": 96},
    "all_on_128": {**ALL_ON, "siamese.image_size": 128},
}
HEADLINE = ("mse", "mae", "r2")


def prepare(workdir: Path) -> Path:
    """The copy, with everything up to finetune run once (kept in `workdir` between runs)."""
    repo = workdir / "repo"
    env = base_env()
    # metrics/ travels with the checkout: the outputs themselves say whether the stages ran.
    if (repo / "models" / "finetune" / "model.safetensors").is_file() and (repo / "data" / "pairs").is_dir():
        return repo
    if not (repo / ".git").is_dir():
        repo.mkdir(parents=True, exist_ok=True)
        copy_worktree(REPO_ROOT, repo)
        run(["git", "init", "-q"], repo, env)
        run(["git", "add", "-A"], repo, env)
        run(["git", "commit", "-q", "-m", "bench snapshot"], repo, env)
    started = time.perf_counter()
    run(["dvc", "repro", "score", "finetune"], repo, env)
    print(f"data stages and finetune (once): {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return repo


def learn(repo: Path, overrides: dict[str, Any], seed: int) -> dict[str, Any]:
    """siamese and evaluate under `overrides`; the figures of the variant."""
    copy_worktree(REPO_ROOT, repo)  # this checkout's code and defaults, then the variant's settings
    set_params(repo, {"seed": seed, **MAIN, **overrides})
    env = base_env()
    started = time.perf_counter()
    for stage in ("siamese", "evaluate"):
        run([sys.executable, "-m", f"stages.{stage}"], repo, env)
    headline = json.loads((repo / "metrics" / "headline.json").read_text(encoding="utf-8"))
    figures: dict[str, Any] = {name: headline[name] for name in HEADLINE}
    figures["recall@1"] = headline["recall_at_1"][MODEL]
    figures["auc"] = headline["auc"][MODEL]
    figures["seconds"] = time.perf_counter() - started
    figures["transformed"] = per_transform(repo / "metrics" / "evaluate" / "transformed.csv")
    return figures


def per_transform(path: Path) -> dict[str, tuple[float, str, float]]:
    """Per transform: (model's recall@1, the best peer, its recall@1)."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    table: dict[str, tuple[float, str, float]] = {}
    for transform in dict.fromkeys(row["transform"] for row in rows):
        mine = [row for row in rows if row["transform"] == transform]
        model = next(float(row["recall_at_1"]) for row in mine if row["scorer"] == MODEL)
        peer = max((row for row in mine if row["scorer"] != MODEL), key=lambda row: float(row["recall_at_1"]))
        table[transform] = (model, peer["scorer"], float(peer["recall_at_1"]))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="main,alter,queue,spread,all_on,all_on_96",
                        help=f"comma-separated, of: {', '.join(VARIANTS)}")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the copy here (reused) instead of a temp dir")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    names = args.variants.split(",")
    if unknown := set(names) - set(VARIANTS):
        sys.exit(f"--variants: unknown {sorted(unknown)}; known: {', '.join(VARIANTS)}")
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="artsim-robust-") as scratch:
        repo = prepare(args.workdir or Path(scratch))
        for name in names:
            results[name] = learn(repo, VARIANTS[name], args.seed)
            print(f"{name}: {json.dumps(results[name])}", file=sys.stderr)
            write(results, args.seed)  # after each variant: a long run that is stopped keeps what it measured


def write(results: dict[str, dict[str, Any]], seed: int) -> None:
    names = list(results)
    transforms = list(results[names[0]]["transformed"])
    columns = ["variant", "settings", "MSE", "MAE", "R²", "recall@1", "pair AUC", "seconds",
               *(f"{t} recall@1 model / best peer" for t in transforms)]
    rows = []
    for name in names:
        row = results[name]
        settings = ", ".join(f"{key.split('.', 1)[1]}={value}" for key, value in VARIANTS[name].items()) or "main"
        cells = [f"{model:.2f} / {peer} {best:.2f}" for model, peer, best in row["transformed"].values()]
        rows.append([name, settings, f"{row['mse']:.4f}", f"{row['mae']:.4f}", f"{row['r2']:.3f}",
                     f"{row['recall@1']:.3f}", f"{row['auc']:.3f}", f"{row['seconds']:.0f}", *cells])
    record("robust_training", columns, rows,
           note=f"seed {seed}, the sample; siamese and evaluate per variant on main's data and finetune")

if __name__ == "__main__":
    main()
