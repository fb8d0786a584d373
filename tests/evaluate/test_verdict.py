"""Thresholds at a precision on the held-out pairs, the verdict they give a score, shipped beside the model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from artsim.evaluate import evaluate_on_test
from artsim.evaluate.verdict import (
    FEW_POSITIVES,
    ShippedThresholds,
    Thresholds,
    precision_recall_table,
    read_shipped,
    thresholds_at_precision,
    verdict_for,
)
from artsim.index.query import Calibration
from tests.evaluate.test_run import NO_TRANSFORMED_SET, collection, descriptor_scorer, mostly_test, random_model
from tests.support.tiny_project import build_tiny_project, resolved_pairs


def test_the_threshold_is_the_lowest_score_reaching_the_precision() -> None:
    # Scores high to low: + + + + + + + + + - + - (10 positives, 2 negatives).
    scores = np.array([1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5, 0.45])
    positive = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0], dtype=bool)
    found = thresholds_at_precision(positive, scores)
    # >= 0.5: 10 of 11 are derived (0.909); >= 0.55: 9 of 10 (0.90); the lowest reaching 0.90 is 0.5.
    assert found.at_precision[0.90] == 0.5 and found.recall[0.90] == 1.0
    # 0.99 only where no negative is above: >= 0.6, 9 of the 10 positives.
    assert found.at_precision[0.99] == 0.6 and found.recall[0.99] == pytest.approx(0.9)
    assert (found.positives, found.negatives, found.pairs) == (10, 2, 12)
    # Clopper-Pearson on the precision there: 10 of 11 derived, and 9 of 9 (lower bound 0.025 ** (1 / 9)).
    assert found.interval[0.90] == pytest.approx((0.5872, 0.9977), abs=1e-4)
    assert found.interval[0.99] == pytest.approx((0.025 ** (1 / 9), 1.0))
    assert found.report() == {"threshold_at_precision_90": 0.5, "threshold_at_precision_99": 0.6,
                              "threshold_at_precision_90_precision_ci_low": found.interval[0.90][0],
                              "threshold_at_precision_90_precision_ci_high": found.interval[0.90][1],
                              "threshold_at_precision_99_precision_ci_low": found.interval[0.99][0],
                              "threshold_at_precision_99_precision_ci_high": found.interval[0.99][1],
                              "threshold_positives": 10, "threshold_negatives": 2}


def test_a_precision_never_reached_is_null_and_the_keys_stay() -> None:
    # The highest score is a negative: precision 0.99 is reached by no threshold.
    found = thresholds_at_precision(np.array([0, 1, 1, 0], dtype=bool), np.array([0.9, 0.8, 0.7, 0.1]))
    assert found.at_precision[0.99] is None and found.at_precision[0.90] is None
    one_class = thresholds_at_precision(np.ones(3, dtype=bool), np.array([0.2, 0.4, 0.6]))
    assert one_class.report() == {"threshold_at_precision_90": None, "threshold_at_precision_99": None,
                                  "threshold_at_precision_90_precision_ci_low": None,
                                  "threshold_at_precision_90_precision_ci_high": None,
                                  "threshold_at_precision_99_precision_ci_low": None,
                                  "threshold_at_precision_99_precision_ci_high": None,
                                  "threshold_positives": 3, "threshold_negatives": 0}
    assert precision_recall_table(np.ones(3, dtype=bool), np.array([0.2, 0.4, 0.6])).empty


def test_thresholds_rest_on_every_held_out_variant_against_every_other_original(tmp_path: Path) -> None:
    """Each test variant against its source and every other original (not one negative per variant), and a train
    pair never moves a threshold: a negative train pair scored above every test pair would."""
    paths = build_tiny_project(tmp_path)
    pairs = mostly_test(resolved_pairs(paths))
    described = descriptor_scorer(paths)
    plain = evaluate_on_test(random_model(), pairs, collection(paths, mostly_test=True), 32, 4,
                             descriptor_scorer=described, alterations=NO_TRANSFORMED_SET)
    train_negative = (pairs["split"] == "train") & ~pairs["positive"]
    assert train_negative.any()
    tampered = pairs.assign(score=np.where(train_negative, 0.999, pairs["score"]))
    again = evaluate_on_test(random_model(), tampered, collection(paths, mostly_test=True), 32, 4,
                             descriptor_scorer=described, alterations=NO_TRANSFORMED_SET)
    assert again.thresholds == plain.thresholds
    queries, originals = plain.report["n_queries"], plain.report["n_candidates"]
    for name in ("model", "descriptor", "phash", "dhash", "ssim"):
        found = plain.thresholds[name]
        assert (found.positives, found.negatives) == (queries, queries * (originals - 1)), name
    # The same computation on the pairs.parquet pairs of every split would give another threshold.
    every_split = thresholds_at_precision(tampered["positive"].to_numpy(bool), tampered["score"].to_numpy())
    assert every_split.at_precision != plain.thresholds["descriptor"].at_precision
    curve = plain.tables["precision_recall/descriptor.csv"]
    assert list(curve.columns) == ["threshold", "precision", "recall"] and len(curve) > 0
    sampled = evaluate_on_test(random_model(), pairs, collection(paths, mostly_test=True), 32, 4,
                               negatives_per_query=3, seed=1, alterations=NO_TRANSFORMED_SET)
    assert (sampled.thresholds["model"].positives, sampled.thresholds["model"].negatives) == (queries, 3 * queries)


THRESHOLDS = Thresholds({0.90: 0.74, 0.99: 0.9}, {0.90: 0.8, 0.99: 0.4}, positives=36, negatives=36,
                        interval={0.90: (0.81, 0.98), 0.99: (0.95, 1.0)})


@pytest.mark.parametrize(
    ("score", "verdict", "threshold", "precision", "start"),
    [
        (
            0.95,
            "very_likely",
            0.9,
            0.99,
            "derived: very likely (score = 0.950 >= 0.900; 99% precision, 95% CI 0.95–1.00, on 36 derived / 36 "
            "unrelated held-out pairs",
        ),
        (
            0.81,
            "likely",
            0.74,
            0.90,
            "derived: likely (score = 0.810 >= 0.740; 90% precision, 95% CI 0.81–0.98, on 36 derived / 36 unrelated "
            "held-out pairs",
        ),
        (0.74, "likely", 0.74, 0.90, "derived: likely"),
        (
            0.31,
            "no_evidence",
            0.74,
            0.90,
            "no evidence of derivation (score = 0.310 < 0.740; 90% precision, 95% CI 0.81–0.98, on 36 derived",
        ),
    ],
)
def test_the_verdict_names_its_threshold_precision_and_pairs(score, verdict, threshold, precision, start) -> None:
    found = verdict_for(score, THRESHOLDS)
    assert (found.verdict, found.threshold, found.precision, found.pairs) == (verdict, threshold, precision, 72)
    assert found.text.startswith(start)
    assert ("few pairs" in found.text) == (36 < FEW_POSITIVES)


def test_without_usable_thresholds_there_is_no_verdict() -> None:
    assert verdict_for(0.9, None).verdict == "none"
    assert verdict_for(0.9, None).text == "no verdict: no thresholds shipped with this model"
    assert verdict_for(0.9, None, why_none="the file is gone").why_none == "the file is gone"  # the reason alone
    unreached = Thresholds({0.90: None, 0.99: None}, {0.90: None, 0.99: None}, positives=3, negatives=3)
    assert (
        verdict_for(0.9, unreached).text
        == "no verdict: 90% precision was not reached on 3 derived / 3 unrelated held-out pairs; "
        "few pairs, a rough threshold"
    )
    assert verdict_for(0.9, unreached).text == f"no verdict: {verdict_for(0.9, unreached).why_none}"
    only_90 = Thresholds({0.90: 0.5, 0.99: None}, {0.90: 1.0, 0.99: None}, positives=200, negatives=200)
    assert verdict_for(0.99, only_90).verdict == "likely" and "few pairs" not in verdict_for(0.99, only_90).text
    assert verdict_for(0.99, only_90).why_none == verdict_for(0.1, only_90).why_none == ""  # a verdict: no reason
    assert "95% CI" not in verdict_for(0.99, only_90).text  # no interval measured: none is claimed


def test_a_probability_verdict_says_how_sure_and_on_what() -> None:
    found = verdict_for(0.93, Thresholds({0.90: 0.6, 0.99: 0.97}, {0.90: 0.9, 0.99: 0.5}, 21, 588,
                                         {0.90: (0.8123, 0.9811), 0.99: (0.9, 1.0)}), value_name="p")
    assert found.text == ("derived: likely (p = 0.930 >= 0.600; 90% precision, 95% CI 0.81–0.98, on 21 derived / "
                          "588 unrelated held-out pairs; few pairs, a rough threshold)")


def test_shipped_thresholds_bind_to_their_weights(tmp_path: Path) -> None:
    path = tmp_path / "verdict.json"
    assert read_shipped(path, "abc")[0] is None and "missing" in read_shipped(path, "abc")[1]
    ShippedThresholds("abc", THRESHOLDS).save(path)
    assert read_shipped(path, "abc") == (ShippedThresholds("abc", THRESHOLDS), "")
    other, why = read_shipped(path, "def")
    assert other is None and "other weights" in why
    for damaged in (
        "{",
        json.dumps({"model_sha256": "abc"}),
        json.dumps(
            {"model_sha256": "abc", "positives": 1, "negatives": 1, "levels": [{"precision": 0.9, "threshold": "NaN"}]}
        ),
    ):
        path.write_text(damaged)
        found, why = read_shipped(path, "abc")
        assert found is None and "unusable" in why


def test_the_search_default_ships_with_the_thresholds_and_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "verdict.json"
    ShippedThresholds("abc", THRESHOLDS, default_by="phash").save(path)
    assert json.loads(path.read_text())["default_by"] == "phash"
    assert read_shipped(path, "abc")[0] == ShippedThresholds("abc", THRESHOLDS, default_by="phash")
    assert read_shipped(path, "def")[0] is None  # bound to the weights, as the thresholds are
    for damaged in ("../../etc", 3, ["model"]):
        path.write_text(json.dumps({**ShippedThresholds("abc", THRESHOLDS).as_dict(), "default_by": damaged}))
        found, why = read_shipped(path, "abc")
        assert found is None and "default_by" in why


def test_every_scorers_thresholds_travel_with_the_model_and_a_format_1_file_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "verdict.json"
    phash = Thresholds({0.9: 0.81, 0.99: None}, {0.9: 0.7, 0.99: None}, 21, 588)
    ShippedThresholds.of("abc", {"model": THRESHOLDS, "phash": phash}).save(path)
    assert read_shipped(path, "abc")[0].by_scorer() == {"model": THRESHOLDS, "phash": phash}
    raw = json.loads(path.read_text())
    assert raw["levels"][0]["threshold"] == 0.74 and raw["scorers"]["phash"]["negatives"] == 588  # the model's on top
    del raw["scorers"]
    raw["format"] = 1
    path.write_text(json.dumps(raw))  # as evaluate wrote it before: the model's only
    assert read_shipped(path, "abc")[0].by_scorer() == {"model": THRESHOLDS}
    raw["scorers"] = {"phash": {"levels": [{"precision": 0.9, "threshold": "NaN"}], "positives": 1, "negatives": 1}}
    path.write_text(json.dumps(raw))
    found, why = read_shipped(path, "abc")
    assert found is None and "unusable" in why  # a damaged table of one scorer spoils the file, named


def test_fuseds_calibration_ships_in_format_3_and_an_unknown_format_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "verdict.json"
    calibration = Calibration(("model", "phash"), (9.5, 14.0), -17.25, positives=12, negatives=336)
    shipped = ShippedThresholds.of("abc", {"model": THRESHOLDS, "fused": THRESHOLDS}, "fused", calibration)
    shipped.save(path)
    raw = json.loads(path.read_text())
    assert raw["format"] == 3 and raw["calibration"]["fitted_on"] == {"split": "val", "positives": 12,
                                                                      "negatives": 336}
    assert raw["levels"][0]["precision_ci"] == [0.81, 0.98]
    assert read_shipped(path, "abc") == (shipped, "")  # intervals and calibration read back as written
    del raw["calibration"], raw["scorers"]["fused"]
    for level in raw["levels"]:
        del level["precision_ci"]
    raw["format"] = 2
    path.write_text(json.dumps(raw))  # a format-2 file: no calibration, no intervals, still read
    older = read_shipped(path, "abc")[0]
    assert older.calibration is None and older.thresholds.interval == {}
    for damaged in ({**raw, "format": 4}, {**raw, "format": "3"}):
        path.write_text(json.dumps(damaged))
        found, why = read_shipped(path, "abc")
        assert found is None and f"format {damaged['format']!r} is not one this artsim reads (1, 2, 3)" in why
    for calibration_raw in ({"features": ["model", "ssim"], "coefficients": [1, 2], "intercept": 0},
                            {"features": ["model"], "coefficients": [1, 2], "intercept": 0},
                            {"features": ["model"], "coefficients": ["NaN"], "intercept": 0}):
        path.write_text(json.dumps({**raw, "format": 3, "calibration": calibration_raw}))
        found, why = read_shipped(path, "abc")
        assert found is None and "unusable" in why, calibration_raw
