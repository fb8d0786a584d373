"""A score people can act on: the thresholds at which "derived from" reaches a given precision on
the held-out pairs, and the verdict they give one score.

evaluate computes, for the model, every peer and the calibrated `fused` probability, the precision / recall curve
of derived (a test variant and its source) against unrelated (it and every other original) on held-out test pairs
only (never a train or val pair), the lowest score threshold at which precision reaches PRECISION_LEVELS (the
threshold with the most recall at that precision; None where no threshold reaches it) and a 95% Clopper-Pearson
interval on the precision there. The thresholds are shipped beside the model (models/verdict.json, bound to the
weights by their SHA-256) with fused's calibration, and `verdict_for` turns one score into the verdict line every
front end shows. The same file carries the model's search default (`default_by`: the ranking with the best
MRR over the held-out queries, plain and transformed), so what `artsim search` does by default follows the
weights, not a metrics file.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binomtest
from sklearn.metrics import precision_recall_curve

from artsim.core import layout
from artsim.evaluate.breakdowns import SEARCH_RANKINGS
from artsim.index.query import Calibration

PRECISION_LEVELS = (0.90, 0.99)
CONFIDENCE = 0.95  # of the interval on each threshold's precision
VERDICT_FILE = layout.VERDICT.name
# 1: the model's thresholds only; 2: the other scorers' under "scorers"; 3: fused's calibration and thresholds,
# a confidence interval on each precision. Every one of them is read (an older one has no calibration).
FORMAT_VERSION = 3
READ_FORMATS = (1, 2, 3)
# How a verdict names the value it judges (a score, or fused's probability).
VALUE_NAMES = {"fused": "p"}
# Below this many held-out positives a threshold is rough: every output that shows one says so.
FEW_POSITIVES = 100
CURVE_COLUMNS = ["threshold", "precision", "recall"]
MODEL_SCORER = "model"  # the scorer whose thresholds head the file (evaluate's name for the siamese model)


def level_key(level: float) -> str:
    return f"threshold_at_precision_{round(level * 100)}"


@dataclass(frozen=True)
class Thresholds:
    """The score thresholds of one scorer at each precision level, and the held-out pairs they rest on."""

    at_precision: dict[float, float | None]  # level -> lowest threshold reaching it, None if none does
    recall: dict[float, float | None]        # level -> recall of "score >= threshold"
    positives: int
    negatives: int
    # level -> CONFIDENCE Clopper-Pearson interval on the precision of "score >= threshold" (absent: not measured)
    interval: dict[float, tuple[float, float]] = field(default_factory=dict)

    @property
    def pairs(self) -> int:
        return self.positives + self.negatives

    def report(self) -> dict[str, float | int | None]:
        """The fixed keys of metrics/evaluate.json (<scorer>.threshold_at_precision_90, ...)."""
        return {**{level_key(level): value for level, value in self.at_precision.items()},
                **{f"{level_key(level)}_precision_ci_{end}": bound for level in self.at_precision
                   for end, bound in zip(("low", "high"), self.interval.get(level) or (None, None))},
                "threshold_positives": self.positives, "threshold_negatives": self.negatives}


def thresholds_at_precision(
    positive: np.ndarray, scores: np.ndarray, levels: tuple[float, ...] = PRECISION_LEVELS
) -> Thresholds:
    """Lowest threshold t with precision(score >= t) >= level, per level; None without both classes or
    where no t reaches it. NaN scores count as the lowest score."""
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    found: dict[float, float | None] = dict.fromkeys(levels)
    recalls: dict[float, float | None] = dict.fromkeys(levels)
    intervals: dict[float, tuple[float, float]] = {}
    if n_pos and n_neg:
        precision, recall, threshold = _curve(positive, scores)
        values = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
        for level in levels:
            reached = np.flatnonzero(precision[:-1] >= level)  # the last point is sklearn's (1, 0) sentinel
            if reached.size:
                found[level], recalls[level] = float(threshold[reached[0]]), float(recall[reached[0]])
                intervals[level] = precision_interval(positive[values >= found[level]])
    return Thresholds(found, recalls, n_pos, n_neg, intervals)


def precision_interval(derived: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Clopper-Pearson (exact binomial) interval on the share of derived pairs among those passing a threshold."""
    found = binomtest(int(np.sum(derived)), max(len(derived), 1)).proportion_ci(confidence, method="exact")
    return float(found.low), float(found.high)


def _curve(positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    values = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    return precision_recall_curve(positive, values)


def precision_recall_table(positive: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """The curve behind the thresholds (CURVE_COLUMNS, increasing threshold); empty without both classes."""
    positive = np.asarray(positive, dtype=bool)
    if positive.all() or not positive.any():
        return pd.DataFrame(columns=CURVE_COLUMNS)
    precision, recall, threshold = _curve(positive, scores)
    return pd.DataFrame({"threshold": threshold, "precision": precision[:-1], "recall": recall[:-1]})


def threshold_reports(positive: np.ndarray, scores: Mapping[str, np.ndarray]) -> dict[str, Thresholds]:
    return {name: thresholds_at_precision(positive, values) for name, values in scores.items()}


# --- shipped beside the model ------------------------------------------------------------

@dataclass(frozen=True)
class ShippedThresholds:
    """models/verdict.json: the thresholds of the model and of the other scorers a search ranks by (`others`:
    pHash, ...) and the search default, for the weights whose SHA-256 is `model_sha256`. The model's thresholds
    stay at the top level (as in format 1), every other scorer's under "scorers" (default_by None: a file written
    before it was kept)."""

    model_sha256: str
    thresholds: Thresholds
    others: Mapping[str, Thresholds] = field(default_factory=dict)
    default_by: str | None = None
    calibration: Calibration | None = None  # fused's probability (None: a file before format 3, or none fitted)

    @classmethod
    def of(cls, model_sha256: str, by_scorer: Mapping[str, Thresholds],
           default_by: str | None = None, calibration: Calibration | None = None) -> "ShippedThresholds":
        """Every scorer's thresholds (evaluate's `thresholds`), the model's among them: a search ranking picks the
        ones that judge its hits (artsim.index.query.Ranking.judged_by)."""
        others = dict(by_scorer)
        return cls(model_sha256, others.pop(MODEL_SCORER), others, default_by, calibration)

    def by_scorer(self) -> dict[str, Thresholds]:
        return {MODEL_SCORER: self.thresholds, **self.others}

    def as_dict(self) -> dict[str, Any]:
        return {"format": FORMAT_VERSION, "model_sha256": self.model_sha256, "split": "test",
                **_thresholds_dict(self.thresholds),
                "scorers": {name: _thresholds_dict(thresholds) for name, thresholds in self.others.items()},
                **({"default_by": self.default_by} if self.default_by is not None else {}),
                **({"calibration": _calibration_dict(self.calibration)} if self.calibration is not None else {})}

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def from_dict(cls, raw: Any) -> "ShippedThresholds":
        """Validated; a damaged or hand-edited file raises ValueError naming what is wrong."""
        if not isinstance(raw, dict) or raw.get("format", 1) not in READ_FORMATS:
            found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
            raise ValueError(f"{VERDICT_FILE}: format {found!r} is not one this artsim reads "
                             f"({', '.join(map(str, READ_FORMATS))}): rerun the evaluate stage")
        try:
            sha = str(raw["model_sha256"])
            others = {str(name): _thresholds_from(table) for name, table in dict(raw.get("scorers") or {}).items()}
            calibration = _calibration_from(raw["calibration"]) if raw.get("calibration") is not None else None
            shipped = cls(sha, _thresholds_from(raw), others, raw.get("default_by"), calibration)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{VERDICT_FILE}: {type(exc).__name__}: {exc}") from None
        if shipped.default_by is not None and shipped.default_by not in SEARCH_RANKINGS:
            raise ValueError(f"{VERDICT_FILE}: default_by must be one of {', '.join(SEARCH_RANKINGS)}, "
                             f"not {shipped.default_by!r}")
        return shipped


def _thresholds_dict(t: Thresholds) -> dict[str, Any]:
    return {"levels": [{"precision": level, "threshold": t.at_precision[level], "recall": t.recall[level],
                        "precision_ci": list(t.interval[level]) if level in t.interval else None}
                       for level in t.at_precision],
            "positives": t.positives, "negatives": t.negatives}


def _thresholds_from(raw: Any) -> Thresholds:
    levels = {float(row["precision"]): _finite_or_none(row["threshold"]) for row in raw["levels"]}
    recalls = {float(row["precision"]): _finite_or_none(row.get("recall")) for row in raw["levels"]}
    intervals = {float(row["precision"]): _interval_from(row["precision_ci"])
                 for row in raw["levels"] if row.get("precision_ci") is not None}
    positives, negatives = int(raw["positives"]), int(raw["negatives"])
    if not levels or min(positives, negatives) < 0 or not all(0 < level <= 1 for level in levels):
        raise ValueError("levels must be precisions in (0, 1], counts non-negative")
    return Thresholds(dict(sorted(levels.items())), dict(sorted(recalls.items())), positives, negatives, intervals)


def _interval_from(raw: Any) -> tuple[float, float]:
    low, high = (float(value) for value in raw)
    if not 0 <= low <= high <= 1:
        raise ValueError(f"precision_ci {[low, high]} is not an interval within [0, 1]")
    return low, high


def _calibration_dict(calibration: Calibration) -> dict[str, Any]:
    return {"features": list(calibration.features), "coefficients": list(calibration.coefficients),
            "intercept": calibration.intercept, "fitted_on": {"split": "val", "positives": calibration.positives,
                                                              "negatives": calibration.negatives}}


def _calibration_from(raw: Any) -> Calibration:
    fitted_on = raw.get("fitted_on") or {}
    return Calibration(tuple(str(name) for name in raw["features"]),
                       tuple(float(value) for value in raw["coefficients"]), float(raw["intercept"]),
                       int(fitted_on.get("positives", 0)), int(fitted_on.get("negatives", 0)))


def _finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"threshold {value} is not finite")
    return value


def read_shipped(path: Path, model_sha256: str) -> tuple[ShippedThresholds | None, str]:
    """What `path` ships (every scorer's thresholds, the search default) if it is for these weights, else None;
    and why not (empty if found)."""
    if not path.is_file():
        return None, f"no thresholds shipped with this model ({VERDICT_FILE} is missing: run the evaluate stage)"
    try:
        shipped = ShippedThresholds.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        return None, f"no thresholds shipped with this model ({path}: unusable: {exc})"
    if shipped.model_sha256 != model_sha256:
        return None, f"no thresholds shipped with this model ({path} was computed for other weights)"
    return shipped, ""


# --- the verdict -------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    """What one score means. verdict: very_likely | likely | no_evidence | none (no usable threshold); why_none: the
    reason there is none (`text` says "no verdict: " and it), so a caller wording it otherwise cuts no text."""

    verdict: str
    text: str
    threshold: float | None
    precision: float | None
    pairs: int | None
    positives: int | None
    negatives: int | None
    why_none: str = ""

    @property
    def derived(self) -> bool | None:
        """At or above the lowest-precision threshold; None where there is no verdict."""
        return None if self.verdict == "none" else self.verdict in VERDICT_WORDS

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def payload(self) -> dict[str, Any]:
        """The fields compare's JSON carries (CLI and service alike)."""
        return {
            "verdict": self.verdict,
            "verdict_text": self.text,
            "threshold": self.threshold,
            "precision": self.precision,
            "pairs": self.pairs,
            "positives": self.positives,
            "negatives": self.negatives,
        }


VERDICT_WORDS = {"very_likely": "derived: very likely", "likely": "derived: likely"}


def verdict_for(
    score: float, thresholds: Thresholds | None, why_none: str = "no thresholds shipped with this model",
    value_name: str = "score",
) -> Verdict:
    """The verdict of `score` by the highest precision level whose threshold it reaches (levels in
    increasing precision: the lowest is 'likely', a higher one 'very likely'); below the lowest,
    no evidence of derivation. Every text names the value (`value_name`: score, or p for a probability), the
    threshold, its precision with its confidence interval, and the held-out pairs beneath."""
    if thresholds is None:
        return _no_verdict(why_none, (None, None, None))
    levels = sorted(level for level, value in thresholds.at_precision.items() if value is not None)
    counts = (thresholds.pairs, thresholds.positives, thresholds.negatives)
    if not levels:
        lowest = min(thresholds.at_precision)
        return _no_verdict(f"{lowest:.0%} precision was not reached on {evidence_text(thresholds)}", counts)
    reached = [level for level in levels if score >= thresholds.at_precision[level]]
    if reached:
        level = reached[-1]
        word = "very_likely" if level != levels[0] else "likely"
        text = f"{VERDICT_WORDS[word]} ({value_name} = {score:.3f} >= {thresholds.at_precision[level]:.3f}; "
    else:
        level, word = levels[0], "no_evidence"
        text = f"no evidence of derivation ({value_name} = {score:.3f} < {thresholds.at_precision[level]:.3f}; "
    text += f"{precision_text(thresholds, level)}, on {evidence_text(thresholds)})"
    return Verdict(word, text, thresholds.at_precision[level], level, *counts)


def _no_verdict(why: str, counts: tuple[int | None, int | None, int | None]) -> Verdict:
    return Verdict("none", f"no verdict: {why}", None, None, *counts, why_none=why)


def precision_text(thresholds: Thresholds, level: float) -> str:
    """"90% precision, 95% CI 0.81–0.98": a threshold's precision level and the interval measured there."""
    interval = thresholds.interval.get(level)
    around = f", {CONFIDENCE:.0%} CI {interval[0]:.2f}–{interval[1]:.2f}" if interval else ""
    return f"{level:.0%} precision{around}"


def evidence_text(thresholds: Thresholds) -> str:
    """The held-out pairs a threshold rests on, and a warning when they are few."""
    text = f"{thresholds.positives} derived / {thresholds.negatives} unrelated held-out pairs"
    if thresholds.positives < FEW_POSITIVES:
        text += "; few pairs, a rough threshold"
    return text
