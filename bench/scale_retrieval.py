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
- every scorer's transformed recall@1 per transform, and issue 26's goal at scale (pooled at least
  the teacher's, no transform below 0.5),
- the regression figures (MSE, R², against the constant baseline's MSE), the numbers of
  queries, candidates and test pairs,
- each stage's wall time, and DVC's time beyond the stages.

and records the first configuration's figures (recall@1 of every scorer, plain, per transform and
pooled) in bench/results/scale_retrieval_<N>.json, which docs/gen_tables.py puts in the docs.

Usage (the dataset is kept in --work and reused; each run's wall time, by stage, is recorded in
bench/results/scale_retrieval_<N>.json: with the defaults in force siamese's training is most of it, and it grows
with N):
    nice -n 10 .venv/bin/python bench/scale_retrieval.py --n 2000 --work /tmp/scale-retrieval \
        --json /tmp/scale-retrieval/n2000.json
    ... --resume       # the same command again after it was killed: finished stages kept, training resumed
                       # from its last epoch (artsim.learn.resume), each stage's time summed over its parts
    nice -n 10 .venv/bin/python bench/scale_retrieval.py --n 500   # the docs' figures at N=500, defaults in force
    nice -n 10 .venv/bin/python bench/scale_retrieval.py --quick   # a smoke run (N=40, side 128), recorded nowhere
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
from dvc_scale import (
    CACHE_TYPES,
    STRENGTHS,
    build_dataset,
    environment,
    make_workspace,
    run,
    running_seconds,
    stage_times,
    time_records,
)
from PIL import Image, ImageFilter
from results import commit, record
from seeds import MODEL, PLAIN, dotted, parse_overrides, set_params, transformed_figures
from tqdm import tqdm

from artsim.report.tables import SCORER_NAMES, TEACHER, figure, scale_goal, signed

SCORERS = ("model", "descriptor", "phash", "dhash", "ssim", "fused")
# Issue 26's goal at N=500: transformed recall@1 pooled at least the teacher's, no transform below this.
TRANSFORM_FLOOR = 0.5
MIN_N = 20  # below it the hash split may leave no test or val painting (N=40 is the smallest run here)
QUICK = {"n": 40, "side": 128}  # --quick: a smoke run of the whole harness, recorded nowhere
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
            then: list[dict[str, Any]] = (), resume: bool = False) -> list[dict]:
    """The figures of `overrides`, then of each of `then` on top of them (not of the steps before it),
    in one workspace: after the first `dvc repro evaluate`, each further one reruns only the stages
    whose params differ from the previous step's. With `resume`, the first step goes on in the
    workspace a killed run left (its finished stages kept, training from its checkpoint), its stage
    times summed over the parts run."""
    dataset = work / f"dataset-{count}-side{side}"
    source, _unrelated = build_dataset(dataset, count, side)
    imported = derive_variants(source, dataset / "derived")
    root = work / f"n{count}-retrieval"
    workspace, times = root / "repo", root / "times.jsonl"
    env = environment(root / "artsim-cache", times)
    # made-at is written last: a workspace without it was cut short while being made, and is made again.
    resuming = resume and (root / "made-at").is_file()
    if not resuming:
        shutil.rmtree(root, ignore_errors=True)  # a rerun starts from scratch: stage times comparable
        make_workspace(workspace, source, imported, CACHE_TYPES["hardlink"], env)
        (root / "base-params.yaml").write_text((workspace / "params.yaml").read_text(encoding="utf-8"))
        (root / "made-at").write_text(commit())  # a resumed run's code is the workspace's, not HEAD's
    base_params = (root / "base-params.yaml").read_text(encoding="utf-8")
    rows = []
    for index, step in enumerate([overrides, *({**overrides, **more} for more in then)]):
        # Each step on the workspace's own params: a step's keys must not linger into the next.
        (workspace / "params.yaml").write_text(base_params, encoding="utf-8")
        set_params(workspace, step)
        if not (resuming and index == 0):
            times.unlink(missing_ok=True)
        rows.append({**repro_and_read(workspace, env, times, count, side, step),
                     "made_at": (root / "made-at").read_text()})
        report(rows[-1])
    return rows


def repro_and_read(workspace: Path, env: dict[str, str], times: Path, count: int, side: int,
                   overrides: dict[str, Any]) -> dict:
    params = yaml.safe_load((workspace / "params.yaml").read_text(encoding="utf-8"))
    # A resumed run: what the killed runs' stages ran (finished, or cut short and written down by the stage
    # wrapper's heartbeat) counts too; DVC's own time in those runs is not known.
    earlier_s = sum(record["seconds"] for record in time_records(times)) + running_seconds(times)
    started = time.perf_counter()
    run(["dvc", "repro", "evaluate"], workspace, env)
    repro_s = time.perf_counter() - started + earlier_s
    stages = stage_times(times)
    metrics = json.loads((workspace / "metrics" / "evaluate.json").read_text())
    return {
        "n": count, "side": side, "overrides": overrides,
        "params": {key: dotted(params, key) for key in SHOWN_PARAMS},
        "stages_s": stages, "repro_s": repro_s, "dvc_s": repro_s - sum(stages.values()), "earlier_runs_s": earlier_s,
        "counts": {key: metrics.get(key) for key in COUNTS},
        "regression": {key: metrics.get(key) for key in REGRESSION},
        "plain": {s: {k: metrics.get(s, {}).get(k) for k in RANKING} for s in SCORERS},
        "transformed": {s: {k: metrics.get("transformed", {}).get(s, {}).get(k) for k in RANKING} for s in SCORERS},
        "gaps": gaps(metrics),
        "per_transform": transformed_figures(workspace / "metrics" / "evaluate" / "transformed.csv"),
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


def goal(per_transform: dict) -> dict:
    """Issue 26's goal at collection scale, per transformed set (artsim.report.tables.scale_goal)."""
    return scale_goal(per_transform, TRANSFORM_FLOOR)


def record_row(row: dict) -> Path:
    """bench/results/scale_retrieval_<N>.json: every scorer's recall@1 on the plain set, per transform and
    pooled (the rows docs/gen_tables.py shows), the model's gap to its teacher; the whole row beside."""
    sets = {PLAIN: row["plain"], **row["per_transform"]}
    scorers = [s for s in SCORERS if any(s in by_scorer for by_scorer in sets.values())]
    rows = [[name, *(figure((by_scorer.get(s) or {}).get("recall_at_1")) for s in scorers),
             signed(gap_to_teacher(by_scorer))] for name, by_scorer in sets.items()]
    reached = goal(row["per_transform"])
    counts = row["counts"]
    note = (f"recall@1 of {counts['n_queries']} test variants among {counts['n_candidates']} originals "
            f"(side {row['side']}); goal (transformed recall@1 pooled >= the teacher's, no transform below "
            f"{TRANSFORM_FLOOR}): {'met' if reached['met'] else 'not met'}"
            + (f", below on {', '.join(reached['below_floor'])}" if reached["below_floor"] else "")
            + f"; dvc repro evaluate {row['repro_s']:.0f} s"
            + (f", {row['earlier_runs_s']:.0f} s of it in runs killed before" if row["earlier_runs_s"] else "")
            + f"; the workspace's code is commit {row['made_at']}")
    header = [SCORER_NAMES[s] + (" (teacher)" if s == TEACHER else "") for s in scorers]
    return record(f"scale_retrieval_{row['n']}", ["set", *header, "model − teacher"], rows, note=note,
                  extra={"figures": row, "goal": reached})


def gap_to_teacher(by_scorer: dict) -> float | None:
    model, teacher = (by_scorer.get(s, {}).get("recall_at_1") for s in (MODEL, TEACHER))
    return None if model is None or teacher is None else model - teacher


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
    for name, scorers in row["per_transform"].items():
        print(f"  transformed {name:<10} recall@1 " + "  ".join(
            f"{scorer} {cell(figures.get('recall_at_1')).strip()}" for scorer, figures in scorers.items()))
    reached = goal(row["per_transform"])
    print(f"goal at scale: model - teacher pooled {cell(reached['teacher_gap'], True).strip()}, "
          f"transforms below {TRANSFORM_FLOOR}: {', '.join(reached['below_floor']) or 'none'}")
    reg = row["regression"]
    print("regression vs the descriptor score: " + ", ".join(f"{key} {cell(reg[key]).strip()}" for key in REGRESSION))
    stages = ", ".join(f"{name} {seconds:.1f}" for name, seconds in row["stages_s"].items())
    print(f"wall time: dvc repro evaluate {row['repro_s']:.1f} s = stages {sum(row['stages_s'].values()):.1f} s "
          f"({stages}) + DVC {row['dvc_s']:.1f} s")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help=f"synthetic originals (3 variants each), at least {MIN_N}")
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
    parser.add_argument("--resume", action="store_true",
                        help="go on with the run a killed one left in --work (same --n, --side, -S)")
    parser.add_argument("--quick", action="store_true",
                        help=f"a smoke run (--n {QUICK['n']} --side {QUICK['side']}), not recorded in bench/results")
    args = parser.parse_args()
    if args.resume and args.then:
        parser.error("--resume goes on with the one configuration of -S; run --then configurations afresh")
    if args.quick:
        args.n, args.side = QUICK["n"], QUICK["side"]
    if args.n < MIN_N or args.side < 32:
        sys.exit(f"--n must be >= {MIN_N} (the split needs test and val paintings) and --side >= 32 (ingest.min_side)")
    overrides = parse_overrides(args.set)
    work = args.work or Path(tempfile.mkdtemp(prefix="scale-retrieval-"))
    try:
        then = [parse_overrides(step.split(",")) for step in args.then]
        rows = measure(work.resolve(), args.n, args.side, overrides, then, args.resume)
        if not args.quick:
            record_row(rows[0])  # the -S configuration; --then rows are printed and in --json only
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
