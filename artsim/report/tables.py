"""Rows of the documentation's tables, computed from what the stages wrote (metrics/*.json and
the CSV tables beside them) and from the benches' JSON (bench/results/<name>.json).

Pure functions: each takes the parsed metrics and returns a `Table` (a header and rows of
text), so a table in the docs can be regenerated and compared with the committed one.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

# The scorers of metrics/evaluate.json, in the order the docs show them, with their names for people.
SCORER_NAMES = {"model": "siamese model", "descriptor": "descriptor score", "phash": "pHash", "dhash": "dHash",
                "ssim": "SSIM (grey, 128 px)", "fused": "fused (calibrated p of model and pHash)"}
PAIR_SCORERS = ("model", "descriptor", "phash", "dhash", "ssim")
MISSING = "—"
MODEL, TEACHER = "model", "descriptor"  # the teacher: the score the model regresses
POOLED = "all"  # the transformed set of every transform together


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def markdown(self) -> str:
        lines = [self.header, tuple("---" for _ in self.header), *self.rows]
        return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def figure(value: Any, digits: int = 3) -> str:
    """A number as the docs print it: `digits` decimals, a dash for null/NaN, integers as they are."""
    if value is None or (isinstance(value, float) and value != value):
        return MISSING
    if isinstance(value, bool) or isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def thresholds(report: Mapping[str, Any]) -> Table:
    """Per scorer (fused's calibrated probability too, where evaluate judged it): the lowest score at 90% and 99%
    held-out precision, the 95% interval on the precision measured there, and the pairs they rest on."""
    judged = [s for s in SCORER_NAMES if s in PAIR_SCORERS or "threshold_at_precision_90" in report.get(s, {})]
    rows = []
    for scorer in judged:
        figures = report[scorer]
        pairs = f"{figure(figures['threshold_positives'])} / {figure(figures['threshold_negatives'])}"
        rows.append((SCORER_NAMES[scorer], figure(figures["threshold_at_precision_90"]), _interval(figures, 90),
                     figure(figures["threshold_at_precision_99"]), _interval(figures, 99), pairs))
    return Table(("scorer", "threshold at 90% precision", "its precision's 95% CI", "threshold at 99% precision",
                  "its precision's 95% CI", "pairs (derived / unrelated)"), tuple(rows))


def _interval(figures: Mapping[str, Any], level: int) -> str:
    """The Clopper-Pearson interval evaluate measured on a threshold's precision, as "0.81–0.98" (a dash: none)."""
    low, high = (figures.get(f"threshold_at_precision_{level}_precision_ci_{end}") for end in ("low", "high"))
    return MISSING if low is None or high is None else f"{figure(low, 2)}–{figure(high, 2)}"


def peers(report: Mapping[str, Any]) -> Table:
    """Per scorer: pair AUC, Spearman with strength, retrieval among every original and among test ones."""
    candidates, test_only = report["n_candidates"], report["n_candidates_test_only"]
    rows = []
    for scorer in SCORER_NAMES:
        f = report[scorer]
        retrieval = " / ".join(figure(f[key], 2) for key in ("recall_at_1", "recall_at_5", "mrr"))
        rows.append((SCORER_NAMES[scorer], figure(f["pair_auc"]), figure(f["strength_spearman"], 2), retrieval,
                     figure(f["recall_at_1_test_only"], 2)))
    return Table(
        (
            "scorer",
            "pair AUC",
            "Spearman with strength",
            f"recall@1 / recall@5 / MRR among {candidates} originals",
            f"recall@1 among {test_only} test originals",
        ),
        tuple(rows),
    )


def transformed(table: pd.DataFrame) -> Table:
    """metrics/evaluate/transformed.csv: per held-out transform, each scorer's recall@1 / pair AUC (fused's too, a
    dash where it scores no pair)."""
    scorers = [s for s in SCORER_NAMES if s in set(table["scorer"])]
    rows = []
    for transform, group in table.groupby("transform", sort=False):
        by_scorer = group.set_index("scorer")
        cells = [
            f"{figure(by_scorer.at[s, 'recall_at_1'], 2)} / {figure(by_scorer.at[s, 'pair_auc'], 2)}" for s in scorers
        ]
        rows.append((str(transform), *cells))
    return Table(("transform", *(f"{SCORER_NAMES[s]}: recall@1 / AUC" for s in scorers)), tuple(rows))


def regression(evaluate: Mapping[str, Any], score: Mapping[str, Any], finetune: Mapping[str, Any]) -> Table:
    """The headline of a run: the descriptor score's separation, the classifier, the siamese regression."""
    auc = score["auc"]
    rows = (
        (
            "descriptor ROC AUC, positives vs negatives (all pairs): colour / texture / edges / weighted score",
            " / ".join(figure(auc[key]) for key in ("color", "texture", "edges", "score")),
        ),
        (
            "mean weighted score, positive / negative pairs",
            f"{figure(score['mean_score']['positive'])} / {figure(score['mean_score']['negative'])}",
        ),
        (
            "finetune test top-1 / macro-F1 / always the commonest train class",
            " / ".join(
                figure(finetune[key], 2) for key in ("test_accuracy", "test_macro_f1", "test_majority_accuracy")
            ),
        ),
        ("siamese test MSE / MAE", f"{figure(evaluate['mse'], 4)} / {figure(evaluate['mae'])}"),
        (
            "mean-of-train baseline test MSE / MAE",
            f"{figure(evaluate['baseline_mse'], 4)} / {figure(evaluate['baseline_mae'])}",
        ),
        (
            "siamese test R² / Pearson / Spearman",
            " / ".join(figure(evaluate[k], 2) for k in ("r2", "pearson", "spearman")),
        ),
        (
            "siamese test MAE, positive / negative pairs",
            f"{figure(evaluate['mae_positive'])} / {figure(evaluate['mae_negative'])}",
        ),
        (
            "test pairs / queries / originals searched",
            " / ".join(figure(evaluate[k]) for k in ("n_test_pairs", "n_queries", "n_candidates")),
        ),
    )
    return Table(("what", "value"), rows)


def error_by(table: pd.DataFrame, column: str) -> Table:
    """metrics/evaluate/error_by_<column>.csv: the model's MAE per value, with the pairs behind it."""
    rows = tuple((str(row[column]), figure(row["mae"]), figure(int(row["n"]))) for _, row in table.iterrows())
    return Table((column, "MAE", "pairs"), rows)


def descriptor_study(table: pd.DataFrame) -> Table:
    """metrics/score/descriptor_study.csv: each candidate descriptor's held-out figures and weight."""
    rows = tuple((str(r["descriptor"]), str(r["family"]), figure(r["weight"], 2), figure(r["auc"]),
                  figure(r["recall_at_1"], 2), figure(r["mrr"], 2), figure(r["spearman_strength"], 2))
                 for _, r in table.iterrows())
    return Table(("descriptor", "family", "weight", "pair AUC", "recall@1", "MRR", "Spearman with strength"), rows)


def bench(result: Mapping[str, Any]) -> Table:
    """A bench's JSON (bench/results/<name>.json): {"columns": [...], "rows": [[...]], "source": ...}."""
    columns: Sequence[str] = result["columns"]
    return Table(tuple(columns), tuple(tuple(figure(cell) for cell in row) for row in result["rows"]))


def bench_parts(result: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The parts of a bench's JSON: keys holding a table of their own (source, columns, rows), recorded beside the
    result's table by another run of the same bench (bench/results.py)."""
    return {key: value for key, value in result.items()
            if isinstance(value, Mapping) and {"source", "columns", "rows"} <= set(value)}


def seed_spread(result: Mapping[str, Any], figure: str) -> Table:
    """bench/results/seeds.json's `sets`: per set (plain, each transform, all), every scorer's `figure`
    as mean ± std over the seeds, and the model's gap to the peer it must match (its `goal`)."""
    sets: Mapping[str, Mapping[str, Any]] = result["sets"]
    present = set().union(*sets.values())
    scorers = [s for s in SCORER_NAMES if s in present] + sorted(present - set(SCORER_NAMES))
    rows = []
    for set_name, by_scorer in sets.items():
        cells = [_mean_std((by_scorer.get(scorer) or {}).get(figure)) for scorer in scorers]
        gap = result["goal"]["sets"].get(set_name, {}).get(figure)
        gap_cell = MISSING if gap is None else f"{gap['gap']:+.3f} ({SCORER_NAMES.get(gap['peer'], gap['peer'])})"
        rows.append((set_name, *cells, gap_cell))
    first = f"set ({len(result['seeds'])} seeds, {result['kernel']} kernels)"
    return Table((first, *(SCORER_NAMES.get(s, s) for s in scorers), "model − peer to match"), tuple(rows))


def _mean_std(stats: Mapping[str, float] | None) -> str:
    return MISSING if stats is None else f"{figure(stats['mean'], 2)} ± {figure(stats['std'], 2)}"


def signed(value: float | None) -> str:
    """A gap as the docs print it: with its sign (negative: a shortfall), a dash when unknown."""
    return MISSING if value is None else f"{value:+.3f}"


def scale_goal(per_transform: Mapping[str, Mapping[str, Mapping[str, Any] | None]], floor: float) -> dict[str, Any]:
    """Issue 26's goal at collection scale (bench/scale_retrieval.py), from {transform: {scorer: figures}}:
    the model's transformed recall@1 pooled at least the teacher's, and on every transform at least `floor`.
    Per set, the model's figure, the one it is held to and the gap (negative: short by that much)."""
    sets = {}
    for name, by_scorer in per_transform.items():
        model = (by_scorer.get(MODEL) or {}).get("recall_at_1")
        target = (by_scorer.get(TEACHER) or {}).get("recall_at_1") if name == POOLED else floor
        sets[name] = {"model": model, "target": target,
                      "gap": None if model is None or target is None else model - target}
    teacher_gap = sets.get(POOLED, {}).get("gap")
    below = [name for name, entry in sets.items() if name != POOLED and entry["gap"] is not None and entry["gap"] < 0]
    return {"teacher_gap": teacher_gap, "below_floor": below, "floor": floor, "sets": sets,
            "met": teacher_gap is not None and teacher_gap >= 0 and not below}


def scale_goal_table(result: Mapping[str, Any]) -> Table:
    """bench/results/scale_retrieval_<N>.json's goal, per transformed set: the model's recall@1, what it is
    held to (the floor on a transform, the teacher's pooled) and the gap, computed from its figures."""
    reached = scale_goal(result["figures"]["per_transform"], result["goal"]["floor"])
    rows = []
    for name, entry in reached["sets"].items():
        held_to = (f"{SCORER_NAMES[TEACHER]} (teacher) {figure(entry['target'])}" if name == POOLED
                   else f"floor {figure(entry['target'])}")
        met = MISSING if entry["gap"] is None else ("met" if entry["gap"] >= 0 else "not met")
        rows.append((name, figure(entry["model"]), held_to, signed(entry["gap"]), met))
    header = ("transformed set", f"{SCORER_NAMES[MODEL]} recall@1", "held to", "gap (negative: short by)", "goal")
    return Table(header, tuple(rows))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return MISSING
    return f"{seconds / 3600:.1f} h" if seconds >= 360 else f"{seconds:.0f} s"


def growth_projection(result: Mapping[str, Any]) -> Table:
    """bench/results/growth.json's projection: per stage its exponent, peak memory at the largest N it ran at,
    the time projected at the study's scale and where it runs, and the goal met or its gaps; then the total."""
    projected = result["projection"]
    rows = []
    for stage in projected["stages"]:
        exponent = MISSING if stage["exponent"] is None else f"{stage['exponent']:.2f}"
        peak = MISSING if stage["peak_rss_mib"] is None else f"{stage['peak_rss_mib']:.0f} (N={stage['peak_at_n']:,})"
        at_study = stage.get("peak_at_study_mib")
        basis = stage.get("peak_at_study_basis")  # None: the straight line through the sizes run
        measured = f" ({basis})" if basis else ""
        goal = "; ".join(stage["gaps"]) or "met"
        rows.append((stage["stage"], exponent, peak, MISSING if at_study is None else f"{at_study:.0f}{measured}",
                     _duration(stage["projection_s"]), stage["on"], goal))
    fits = projected["fits_in_a_day"]
    verdict = MISSING if fits is None else ("fits in one day" if fits else "does not fit in one day")
    rows.append(("total", "", "", "", _duration(projected["total_s"]), projected["node"], verdict))
    study = f"{projected['study_originals']:,}"
    header = ("stage", "exponent (CPU time)", "peak MiB (at the largest N run)",
              f"peak MiB at {study} (linear unless measured)", f"projected at {study}", "on",
              "goal (exponent <= 1.1, peak <= 4 GB, flat)")
    return Table(header, tuple(rows))
