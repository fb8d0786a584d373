r"""Retrieval at a collection's scale (issue 17, 3b): the whole pipeline through `evaluate` on
`bench/dvc_scale.py`'s synthetic WikiArt-shaped originals (N procedural paintings, its
`build_dataset`), each with 3 variants derived from it here (blurred, hue-shifted, noised, more
so at a higher strength; seeded) and adopted through the `import` backend. dvc_scale's own
variants are independent random images (it measures disk, not similarity), so they are not used:
every scorer would be at chance on them.

In a scratch copy of the repository (what a clone would hold, params pointed at the dataset,
each stage timed by dvc_scale's wrapper) it runs `dvc repro evaluate` (the index stage is not
needed) and prints, from the copy's metrics/evaluate.json:

- every scorer's recall@1, MRR and pair AUC among all originals (model, descriptor score,
  pHash, dHash, SSIM, fused), plain and on the transformed held-out set (`transformed.<scorer>`),
- the issue's goal as explicit gaps: model - descriptor (its teacher) and model - pHash,
- the regression figures (MSE, R², against the constant baseline's MSE), the numbers of
  queries, candidates and test pairs,
- each stage's wall time, and DVC's time beyond the stages.

Usage (N=2000: 81 minutes on 2 shared cores, 50 of them in evaluate; N=500: 16; the dataset is kept in --work
and reused):
    nice -n 10 .venv/bin/python bench/scale_retrieval.py --n 2000 --work /tmp/scale-retrieval \
        --json /tmp/scale-retrieval/n2000.json
    nice -n 10 .venv/bin/python bench/scale_retrieval.py --n 40    # a smoke run, a few minutes
    ... -S siamese.rank_weight=0.2 -S siamese.epochs=4            # params.yaml overrides, as dvc exp run -S
    ... --then siamese.rank_weight=0 --then siamese.rank_weight=0.2  # then each on top of -S alone,
                                                                     # rerunning what it changes
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from dvc_scale import CACHE_TYPES, STRENGTHS, build_dataset, environment, make_workspace, run, stage_times
from PIL import Image, ImageFilter
from seeds import dotted, parse_overrides, set_params
from tqdm import tqdm

SCORERS = ("model", "descriptor", "phash", "dhash", "ssim", "fused")
RANKING = ("recall_at_1", "mrr", "pair_auc")
REGRESSION = ("mse", "baseline_mse", "r2", "mae", "pearson", "spearman")
COUNTS = ("n_queries", "n_candidates", "n_test_pairs", "n_skipped_pairs", "n_unreadable_images")
# The params that decide how the model is trained for ranking, shown beside the figures.
SHOWN_PARAMS = (
    "seed",
    "score.weights",
    "siamese.rank_weight",
    "siamese.rank_candidates",
    "siamese.augment_copies",
    "siamese.epochs",
    "finetune.epochs",
)


def derive_variant(original: Image.Image, strength: float, rng: np.random.Generator) -> Image.Image:
    """Blur, hue shift (either way) and noise, each growing with `strength`: a copy that stays derived."""
    blurred = original.filter(ImageFilter.GaussianBlur(radius=6 * strength))
    hsv = np.asarray(blurred.convert("HSV"), dtype=np.int16)
    hsv[..., 0] = (hsv[..., 0] + int(rng.choice([-1, 1]) * 64 * strength)) % 256  # up to a quarter turn
    shifted = np.asarray(Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB"), dtype=np.float32)
    noisy = shifted + rng.normal(0.0, 40 * strength, size=shifted.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def derive_variants(source: Path, target: Path) -> Path:
    """`target/<Style>/<stem>_<strength>.jpg` for every original of `source`; built once (a marker file)."""
    done = target / "complete"
    if done.exists():
        return target
    for index, original_path in enumerate(
        tqdm(sorted(source.rglob("*.jpg")), desc="derived variants", file=sys.stderr, mininterval=5)
    ):
        rng = np.random.default_rng(index)  # sorted paths: the same variants on every run
        folder = target / original_path.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        with Image.open(original_path) as opened:
            original = opened.convert("RGB")
        for strength in STRENGTHS:
            derive_variant(original, strength, rng).save(folder / f"{original_path.stem}_{strength}.jpg", quality=90)
    done.touch()
    return target


def measure(work: Path, count: int, side: int, overrides: dict[str, Any],
            then: list[dict[str, Any]] = ()) -> list[dict]:
    """The figures of `overrides`, then of each of `then` on top of them (not of the steps before it),
    in one workspace: after the first `dvc repro evaluate`, each further one reruns only the stages
    whose params differ from the previous step's."""
    dataset = work / f"dataset-{count}-side{side}"
    source, _unrelated = build_dataset(dataset, count, side)
    imported = derive_variants(source, dataset / "derived")
    root = work / f"n{count}-retrieval"
    shutil.rmtree(root, ignore_errors=True)  # a rerun starts from scratch: stage times comparable
    workspace, times = root / "repo", root / "times.jsonl"
    env = environment(root / "artsim-cache", times)
    make_workspace(workspace, source, imported, CACHE_TYPES["hardlink"], env)
    base_params = (workspace / "params.yaml").read_text(encoding="utf-8")
    rows = []
    for step in [overrides, *({**overrides, **more} for more in then)]:
        # Each step on the workspace's own params: a step's keys must not linger into the next.
        (workspace / "params.yaml").write_text(base_params, encoding="utf-8")
        set_params(workspace, step)
        times.unlink(missing_ok=True)
        rows.append(repro_and_read(workspace, env, times, count, side, step))
        report(rows[-1])
    return rows


def repro_and_read(workspace: Path, env: dict[str, str], times: Path, count: int, side: int,
                   overrides: dict[str, Any]) -> dict:
    params = yaml.safe_load((workspace / "params.yaml").read_text(encoding="utf-8"))
    started = time.perf_counter()
    run(["dvc", "repro", "evaluate"], workspace, env)
    repro_s = time.perf_counter() - started
    stages = stage_times(times)
    metrics = json.loads((workspace / "metrics" / "evaluate.json").read_text())
    return {
        "n": count, "side": side, "overrides": overrides,
        "params": {key: dotted(params, key) for key in SHOWN_PARAMS},
        "stages_s": stages, "repro_s": repro_s, "dvc_s": repro_s - sum(stages.values()),
        "counts": {key: metrics.get(key) for key in COUNTS},
        "regression": {key: metrics.get(key) for key in REGRESSION},
        "plain": {s: {k: metrics.get(s, {}).get(k) for k in RANKING} for s in SCORERS},
        "transformed": {s: {k: metrics.get("transformed", {}).get(s, {}).get(k) for k in RANKING} for s in SCORERS},
        "gaps": gaps(metrics),
    }


def gaps(metrics: dict) -> dict:
    """model - descriptor and model - pHash, per ranking figure, plain and transformed."""
    out: dict[str, dict[str, float | None]] = {}
    for label, block in (("plain", metrics), ("transformed", metrics.get("transformed", {}))):
        model = block.get("model", {})
        for peer in ("descriptor", "phash"):
            out[f"{label} model-{peer}"] = {
                key: None if model.get(key) is None or block.get(peer, {}).get(key) is None
                else model[key] - block[peer][key]
                for key in RANKING
            }
    return out


def cell(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "   n/a"
    return f"{value:+6.3f}" if signed else f"{value:6.3f}"


def report(row: dict) -> None:
    counts = row["counts"]
    print(f"N={row['n']} originals (side {row['side']}), {counts['n_queries']} test variants queried among "
          f"{counts['n_candidates']} originals, {counts['n_test_pairs']} test pairs "
          f"(skipped {counts['n_skipped_pairs']}, unreadable {counts['n_unreadable_images']})")
    print("params: " + ", ".join(f"{key}={json.dumps(value)}" for key, value in row["params"].items()))
    print(
        "overrides: " + (", ".join(f"{key}={json.dumps(value)}" for key, value in row["overrides"].items()) or "none")
    )
    print(f"{'scorer':<11}| {'plain R@1':>9} {'MRR':>6} {'AUC':>6} | {'transf R@1':>10} {'MRR':>6} {'AUC':>6}")
    for scorer in SCORERS:
        plain, transformed = row["plain"][scorer], row["transformed"][scorer]
        print(f"{scorer:<11}| {cell(plain['recall_at_1']):>9} {cell(plain['mrr'])} {cell(plain['pair_auc'])} | "
              f"{cell(transformed['recall_at_1']):>10} {cell(transformed['mrr'])} {cell(transformed['pair_auc'])}")
    print("gaps (goal: model - descriptor >= 0, model - phash closing on 0):")
    for label, gap in row["gaps"].items():
        print(
            f"  {label:<28} R@1 {cell(gap['recall_at_1'], True)}  MRR {cell(gap['mrr'], True)}  "
            f"AUC {cell(gap['pair_auc'], True)}"
        )
    reg = row["regression"]
    print("regression vs the descriptor score: " + ", ".join(f"{key} {cell(reg[key]).strip()}" for key in REGRESSION))
    stages = ", ".join(f"{name} {seconds:.1f}" for name, seconds in row["stages_s"].items())
    print(f"wall time: dvc repro evaluate {row['repro_s']:.1f} s = stages {sum(row['stages_s'].values()):.1f} s "
          f"({stages}) + DVC {row['dvc_s']:.1f} s")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="synthetic originals (3 variants each)")
    parser.add_argument("--side", type=int, default=384, help="long side of the synthetic paintings")
    parser.add_argument(
        "--work",
        type=Path,
        default=None,
        help="scratch folder (kept, dataset reused); default: a temporary one, removed",
    )
    parser.add_argument(
        "-S", "--set", action="append", default=[], metavar="KEY=VALUE", help="params.yaml override, as dvc exp run -S"
    )
    parser.add_argument(
        "--then",
        action="append",
        default=[],
        metavar="KEY=VALUE[,KEY=VALUE]",
        help="a further configuration on top of -S, measured after it in the same workspace (repeatable)",
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the figures here (a list, one row per configuration)"
    )
    args = parser.parse_args()
    if args.n < 1 or args.side < 32:
        sys.exit("--n must be >= 1 and --side >= 32 (ingest.min_side)")
    overrides = parse_overrides(args.set)
    work = args.work or Path(tempfile.mkdtemp(prefix="scale-retrieval-"))
    try:
        then = [parse_overrides(step.split(",")) for step in args.then]
        rows = measure(work.resolve(), args.n, args.side, overrides, then)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
