"""Metrics on hand-built arrays, embed-once evaluation of the test split, and the stages chained."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from torch import Tensor, nn

from artsim.core.metrics import pair_aucs, strength_spearmans
from artsim.describe import table as descriptor_io
from artsim.describe.run import describe_manifests
from artsim.evaluate import PREDICTION_COLUMNS, DescribedCollection, evaluate_on_test
from artsim.evaluate.breakdowns import DEFAULT_MRR, best_search_ranking, error_by_strength, error_by_style
from artsim.evaluate.regression import (
    baseline_metrics,
    evaluation_report,
    mae_by_kind,
    regression_metrics,
    train_mean_score,
)
from artsim.learn.models import SiameseRegressor, save_weights
from artsim.learn.pair_images import PairImages, predict_pairs
from artsim.params import DescribeParams, ScoreWeights
from artsim.score.similarity import similarity, train_texture_stats
from tests.support.full_ranking import model_score_blocks
from tests.support.tiny_project import build_tiny_project, resolved_pairs

# The held-out transformed set (every test variant under each evaluation alteration) is most of an
# evaluate_on_test run on the tiny project: tests that read nothing of it (tests/evaluate/test_transformed.py
# does) leave it out.
NO_TRANSFORMED_SET: dict = {}

REPORT_KEYS = {"mse", "mae", "rmse", "r2", "pearson", "spearman", "baseline_mse", "baseline_mae", "n_test_pairs"}


def test_perfect_prediction() -> None:
    target = np.array([0.1, 0.4, 0.35, 0.9])
    metrics = regression_metrics(target, target.copy())
    assert metrics["mse"] == 0.0 and metrics["mae"] == 0.0 and metrics["rmse"] == 0.0
    assert metrics["r2"] == 1.0
    assert metrics["pearson"] == pytest.approx(1.0)
    assert metrics["spearman"] == pytest.approx(1.0)


def test_hand_computed_errors() -> None:
    target = np.array([0.0, 1.0, 0.5, 0.5])
    prediction = np.array([0.5, 0.5, 0.5, 1.0])
    metrics = regression_metrics(target, prediction)
    assert metrics["mse"] == pytest.approx((0.25 + 0.25 + 0 + 0.25) / 4)
    assert metrics["mae"] == pytest.approx((0.5 + 0.5 + 0 + 0.5) / 4)
    assert metrics["rmse"] == pytest.approx(math.sqrt(0.1875))
    # Sum of squared deviations from the target mean (0.5) is 0.5.
    assert metrics["r2"] == pytest.approx(1 - 0.75 / 0.5)
    assert metrics["spearman"] == pytest.approx(-0.0, abs=1e-12)


def test_anti_correlated_prediction() -> None:
    metrics = regression_metrics(np.array([0.1, 0.2, 0.3]), np.array([0.3, 0.2, 0.1]))
    assert metrics["pearson"] == pytest.approx(-1.0)
    assert metrics["spearman"] == pytest.approx(-1.0)


def test_constant_prediction_of_the_baseline_equals_the_baseline() -> None:
    target = np.array([0.2, 0.3, 0.6, 0.45])
    report = evaluation_report(target, np.full(4, 0.4), baseline=0.4)
    assert report["mse"] == pytest.approx(report["baseline_mse"])
    assert report["mae"] == pytest.approx(report["baseline_mae"])
    assert report["pearson"] is None and report["spearman"] is None
    assert report["n_test_pairs"] == 4
    assert set(report) == REPORT_KEYS
    json.dumps(report, allow_nan=False)


def test_baseline_metrics_by_hand() -> None:
    assert baseline_metrics(np.array([0.0, 1.0]), 0.25) == {"baseline_mse": (0.0625 + 0.5625) / 2, "baseline_mae": 0.5}


def test_degenerate_inputs_give_null_not_nan() -> None:
    constant_target = regression_metrics(np.full(3, 0.5), np.array([0.4, 0.5, 0.6]))
    assert constant_target["r2"] is None and constant_target["pearson"] is None
    assert constant_target["mse"] == pytest.approx(0.02 / 3)
    single = regression_metrics(np.array([0.5]), np.array([0.4]))
    assert single["pearson"] is None and single["spearman"] is None
    empty = evaluation_report(np.zeros(0), np.zeros(0), baseline=0.5)
    assert empty["n_test_pairs"] == 0 and empty["mse"] is None and empty["baseline_mse"] is None
    json.dumps(empty, allow_nan=False)


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        regression_metrics(np.zeros(3), np.zeros(2))


def test_train_mean_score() -> None:
    pairs = pd.DataFrame({"split": ["train", "train", "test"], "score": [0.2, 0.4, 0.9]})
    assert train_mean_score(pairs) == pytest.approx(0.3)


# --- breakdowns ---------------------------------------------------------------

def test_error_by_strength_counts_positive_pairs_only() -> None:
    # The negative pair (0.5, 0.9) carries the strength of another painting's variant: it says
    # nothing about how far this pair is derived, and must not land in a strength bucket.
    predictions = pd.DataFrame({
        "target": [0.5, 0.5, 0.5, 0.5], "prediction": [0.6, 0.2, 0.7, 0.9],
        "strength": [0.25, 0.25, 0.5, 0.5], "style": ["A", "B", "A", "A"], "positive": [True, True, True, False],
    })
    by_strength = error_by_strength(predictions)
    assert by_strength["strength"].tolist() == [0.25, 0.5] and by_strength["n"].tolist() == [2, 1]
    np.testing.assert_allclose(by_strength["mae"], [0.2, 0.2])
    by_style = error_by_style(predictions)  # the original's style is the pair's own, negatives included
    assert by_style["style"].tolist() == ["A", "B"] and by_style["n"].tolist() == [3, 1]
    np.testing.assert_allclose(by_style["mae"], [(0.1 + 0.2 + 0.4) / 3, 0.3])
    assert mae_by_kind(predictions["target"], predictions["prediction"], predictions["positive"]) == {
        "mae_positive": pytest.approx(0.2), "mae_negative": pytest.approx(0.4)}


def test_strength_spearman_on_positives_only() -> None:
    positive = np.array([True, True, True, False, False])
    strength = np.array([0.25, 0.5, 0.75, 0.25, 0.75])
    scores = {"follows": np.array([0.9, 0.6, 0.3, 0.0, 1.0]), "flat": np.array([0.5, 0.5, 0.5, 0.1, 0.9])}
    # The negatives alone would make "follows" rise with strength; on positives it falls, exactly.
    assert strength_spearmans(positive, strength, scores) == {"follows": pytest.approx(-1.0), "flat": None}


def test_pair_auc_by_hand() -> None:
    positive = np.array([True, True, False, False])
    aucs = pair_aucs(positive, {"right": np.array([0.9, 0.8, 0.2, 0.1]), "wrong": np.array([0.1, 0.2, 0.8, 0.9]),
                                "constant": np.full(4, 0.5), "half": np.array([0.9, 0.1, 0.5, 0.5])})
    assert aucs == {"right": 1.0, "wrong": 0.0, "constant": 0.5, "half": 0.5}
    assert pair_aucs(np.array([True, True]), {"model": np.array([0.1, 0.2])}) == {"model": None}


# --- evaluation of the test split -----------------------------------------------

def describe_tiny_project(paths: dict[str, Path]) -> Path:
    """data/descriptors/descriptors.parquet of the tiny project (undecodable images skipped, as describe does)."""
    out = paths["ingested"].parent / "descriptors"
    describe_manifests(paths["ingested"], paths["generated"], DescribeParams(size=32), out)
    return out / "descriptors.parquet"


def descriptor_scorer(paths: dict[str, Path], weights: ScoreWeights = ScoreWeights()) -> DescribedCollection:
    descriptors = descriptor_io.read_descriptors(describe_tiny_project(paths))
    stats = train_texture_stats(descriptors, pd.read_parquet(paths["ingested"] / "manifest.parquet"))
    return DescribedCollection(descriptors, stats, weights, DescribeParams(size=32))


def collection(paths: dict[str, Path], mostly_test: bool = False) -> pd.DataFrame:
    """The tiny project's originals with their files (what the evaluate stage passes); see mostly_test."""
    originals = pd.read_parquet(paths["ingested"] / "manifest.parquet")
    originals = originals.assign(path=[paths["ingested"] / p for p in originals["path"]])
    return originals.assign(split=np.where(originals["id"] == "o0", "train", "test")) if mostly_test else originals


def mostly_test(pairs: pd.DataFrame) -> pd.DataFrame:
    """Every pair in the test split but those of o0 (the baseline needs train pairs): 12 test originals."""
    return pairs.assign(split=np.where(pairs["original_id"] == "o0", "train", "test"))


def random_model(seed: int = 0) -> SiameseRegressor:
    """Random weights, the head calibrated on random images so that pairs of unit embeddings spread out."""
    torch.manual_seed(seed)
    model = SiameseRegressor(head_hidden=8).eval()
    noise = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        model.head.calibrate(model.embed(noise[:4]), model.embed(noise[4:]), 0.4)
    return model


def flat(report: dict, prefix: str = "") -> dict:
    """The report as `dvc metrics show` lists it: one dotted key per leaf."""
    leaves = {}
    for key, value in report.items():
        leaves.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return leaves


def test_evaluate_on_test_predicts_usable_test_pairs(tmp_path: Path) -> None:
    paths = build_tiny_project(tmp_path)
    (paths["generated"] / "images/g12.jpg").write_bytes(b"")  # g12 belongs to the test pair (o12, g12)
    pairs = resolved_pairs(paths)
    model = SiameseRegressor(head_hidden=4).eval()
    model.start_at(train_mean_score(pairs))

    evaluation = evaluate_on_test(model, pairs, collection(paths), image_size=32, batch_size=3,
                                  descriptor_scorer=descriptor_scorer(paths), alterations=NO_TRANSFORMED_SET)
    report, predictions = evaluation.report, evaluation.predictions
    assert set(PREDICTION_COLUMNS) <= set(predictions.columns)
    assert report["n_test_pairs"] == len(predictions) == 3
    assert report["n_skipped_pairs"] == 1 and report["n_unreadable_images"] == 1
    assert "p12-12" not in set(predictions["pair_id"])
    # An untrained head started at the train mean *is* the baseline.
    assert report["mse"] == pytest.approx(report["baseline_mse"], rel=1e-5)
    assert report["pearson"] is None
    # g11 looks for its source among all 13 originals (every split), and among the 2 test ones;
    # g12 is unreadable, so it asks nothing.
    assert (report["n_queries"], report["n_candidates"], report["n_candidates_test_only"]) == (1, 13, 2)
    # A constant model ties every candidate: ties count against it.
    assert report["model"]["recall_at_1"] == 0.0 and report["model"]["mrr"] == pytest.approx(1 / 13)
    assert report["model"]["recall_at_1_test_only"] == 0.0
    assert report["model"]["pair_auc"] == 0.5 and report["descriptor"]["pair_auc"] == 1.0
    json.dumps(report, allow_nan=False)


@pytest.mark.parametrize(
    ("broken", "skipped", "queries"),
    [
        (["ingested/images/o11.jpg"], 2, 1),  # o11's two pairs; its variant g11 has no source left to find
        (
            [
                "generated/images/g11.jpg",
                "generated/images/g12.jpg",
                "generated/images/g1.jpg",
                "generated/images/g2.jpg",
            ],
            4,
            0,
        ),
    ],
)
def test_unreadable_test_images_are_counted_not_fatal(
    tmp_path: Path, broken: list[str], skipped: int, queries: int
) -> None:
    paths = build_tiny_project(tmp_path)
    for name in broken:
        (tmp_path / "data" / name).write_bytes(b"\xff\xd8 truncated")
    evaluation = evaluate_on_test(random_model(), resolved_pairs(paths), collection(paths), image_size=32, batch_size=4)
    report = evaluation.report
    assert report["n_skipped_pairs"] == skipped and report["n_test_pairs"] == 4 - skipped
    assert report["n_unreadable_images"] == len(broken)
    assert report["n_queries"] == queries
    # An unreadable original is no candidate either.
    assert report["n_candidates"] == 13 - sum(name.startswith("ingested") for name in broken)
    if queries == 0:
        assert report["mse"] is None and report["model"]["mrr"] is None and report["model"]["pair_auc"] is None
        assert report["ssim"]["pair_auc"] is None and report["phash"]["mrr"] is None
        assert evaluation.tables["error_by_strength.csv"].empty
    json.dumps(report, allow_nan=False)


def test_embed_once_gives_the_predictions_of_two_passes_per_pair(tmp_path: Path) -> None:
    paths = build_tiny_project(tmp_path)
    pairs = mostly_test(resolved_pairs(paths))
    model = random_model()
    evaluation = evaluate_on_test(model, pairs, collection(paths, mostly_test=True), image_size=32, batch_size=5,
                                  alterations=NO_TRANSFORMED_SET)

    test = pairs[pairs["split"] == "test"].reset_index(drop=True)
    indices, old = predict_pairs(model, PairImages(test, image_size=32), batch_size=24)  # the former path: model(a, b)
    expected = pd.Series(old, index=test["pair_id"].iloc[indices].to_numpy())
    got = evaluation.predictions.set_index("pair_id")["prediction"]
    assert len(got) == len(expected) == 24
    np.testing.assert_allclose(got.loc[expected.index].to_numpy(), expected.to_numpy(), atol=1e-5)
    assert np.ptp(expected.to_numpy()) > 0.05  # a constant model would agree with anything


class PixelModel(nn.Module):
    """Embeds an image as its pixels and scores a pair by closeness (or, flipped, by distance).

    Each variant of the tiny project is 70% its original, so its own original is the
    nearest in pixel space: this model finds the true source first.
    """

    def __init__(self, flipped: bool = False) -> None:
        super().__init__()
        self.sign = 1.0 if flipped else -1.0

    def embed(self, images: Tensor) -> Tensor:
        return images.flatten(1)

    def score_embeddings(self, ea: Tensor, eb: Tensor) -> Tensor:
        return self.sign * ((ea - eb) ** 2).mean(dim=1)


def test_a_model_that_scores_the_true_source_highest_has_perfect_retrieval(tmp_path: Path) -> None:
    paths = build_tiny_project(tmp_path)
    pairs, scorer, originals = (
        mostly_test(resolved_pairs(paths)),
        descriptor_scorer(paths),
        collection(paths, mostly_test=True),
    )
    evaluation = evaluate_on_test(PixelModel(), pairs, originals, image_size=32, batch_size=5, descriptor_scorer=scorer,
                                  alterations=NO_TRANSFORMED_SET)
    report, scorers = evaluation.report, evaluation.tables["scorers.csv"].set_index("scorer")
    assert (report["n_queries"], report["n_candidates"], report["n_candidates_test_only"]) == (12, 13, 12)
    assert {key: report["model"][key] for key in ("recall_at_1", "recall_at_5", "mrr", "recall_at_1_test_only")} == {
        "recall_at_1": 1.0, "recall_at_5": 1.0, "mrr": 1.0, "recall_at_1_test_only": 1.0}
    # Flipped, the same model ranks the true source last: 13th among all, 12th among the test originals.
    flipped = evaluate_on_test(PixelModel(flipped=True), pairs, originals, image_size=32, batch_size=5,
                               alterations=NO_TRANSFORMED_SET)
    assert flipped.report["model"]["recall_at_1"] == 0.0 and flipped.report["model"]["mrr"] == pytest.approx(1 / 13)
    assert flipped.tables["scorers.csv"].set_index("scorer").at["model", "mrr_test_only"] == pytest.approx(1 / 12)

    # The descriptor baseline ranks as the per-pair descriptor score does, among all 13 originals.
    candidates = [f"o{i}" for i in range(13)]
    reciprocal_ranks = []
    for i in range(1, 13):
        scores = {
            o: similarity(scorer.descriptors.image(f"g{i}"), scorer.descriptors.image(o), scorer.stats, scorer.weights)
            for o in candidates
        }
        reciprocal_ranks.append(1 / sum(score >= scores[f"o{i}"] for score in scores.values()))
    assert report["descriptor"]["mrr"] == pytest.approx(np.mean(reciprocal_ranks))
    # The peers rank the same queries: a variant 70% its original is found by pixel-level measures too.
    for peer in ("phash", "dhash", "ssim"):
        assert scorers.at[peer, "recall_at_5"] == 1.0, peer
    assert scorers.at["ssim", "recall_at_1"] == 1.0 and report["ssim"]["pair_auc"] == 1.0


def test_fused_ranks_the_held_out_queries_between_its_two_rankings_and_the_best_is_the_search_default(
    tmp_path: Path,
) -> None:
    paths = build_tiny_project(tmp_path)
    pairs, originals = mostly_test(resolved_pairs(paths)), collection(paths, mostly_test=True)
    # The flipped model ranks every source last; pHash finds them near the top: fused lies between.
    flipped = evaluate_on_test(PixelModel(flipped=True), pairs, originals, image_size=32, batch_size=5)
    worst = flipped.report
    assert worst["n_queries"] == 12  # the test variants only, as for every scorer
    assert worst["fused"]["pair_auc"] is None  # a ranking, not a pair score
    assert worst["model"]["mrr"] < worst["fused"]["mrr"] < worst["phash"]["mrr"]
    assert flipped.search_default_by == "phash"
    # The right model finds every source first: fused agrees at least as often as pHash alone.
    right = evaluate_on_test(PixelModel(), pairs, originals, image_size=32, batch_size=5)
    assert right.report["fused"]["mrr"] >= right.report["phash"]["mrr"] and right.search_default_by == "model"
    # The default is chosen on every held-out query, plain and transformed, each counting once.
    for evaluation in (flipped, right):
        pooled = evaluation.tables["transformed.csv"].query("transform == 'all'").set_index("scorer")
        queries = evaluation.report["n_queries"]
        assert evaluation.report[DEFAULT_MRR] == pytest.approx({
            name: (evaluation.report[name]["mrr"] * queries + pooled.at[name, "mrr"] * pooled.at[name, "n_queries"])
            / (queries + pooled.at[name, "n_queries"]) for name in ("model", "phash", "fused")})
        assert evaluation.search_default_by == best_search_ranking(evaluation.report[DEFAULT_MRR])


def test_train_originals_and_test_originals_without_a_variant_are_candidates(tmp_path: Path) -> None:
    """The collection, not the test pairs, decides the candidates: a test painting whose
    generation failed is still a painting a variant could come from."""
    paths = build_tiny_project(tmp_path)
    pairs = resolved_pairs(paths)
    without_variant = pairs[pairs["original_id"] != "o12"]  # o12's generation failed: no pair names it
    report = evaluate_on_test(PixelModel(), without_variant, collection(paths), image_size=32, batch_size=5,
                              alterations=NO_TRANSFORMED_SET).report
    assert (report["n_queries"], report["n_candidates"], report["n_candidates_test_only"]) == (1, 13, 2)


def test_peers_are_judged_on_the_same_pairs_as_the_model(tmp_path: Path) -> None:
    paths = build_tiny_project(tmp_path)
    pairs = mostly_test(resolved_pairs(paths))
    evaluation = evaluate_on_test(PixelModel(), pairs, collection(paths, mostly_test=True), image_size=32, batch_size=5,
                                  alterations=NO_TRANSFORMED_SET)
    scorers = evaluation.tables["scorers.csv"].set_index("scorer")
    positive = evaluation.predictions["positive"].to_numpy()
    # The tiny project's descriptor columns hold its hand-set scores: their AUC is that of the target.
    assert (
        pair_aucs(positive, {"target": evaluation.predictions["target"].to_numpy()})["target"]
        == scorers.at["descriptor", "pair_auc"]
    )
    assert list(scorers.index) == [
        "model",
        "descriptor",
        "phash",
        "dhash",
        "ssim",
        "fused",
        "color",
        "texture",
        "edges",
    ]
    # One strength in the tiny project: no correlation with it is defined.
    assert scorers["strength_spearman"].isna().all()
    assert scorers.loc[["color", "texture", "edges"], "recall_at_1"].isna().all()  # parts of the score do not rank


def test_ssim_retrieval_beyond_its_budget_is_null_not_slow(tmp_path: Path) -> None:
    paths = build_tiny_project(tmp_path)
    report = evaluate_on_test(PixelModel(), mostly_test(resolved_pairs(paths)), collection(paths, mostly_test=True),
                              image_size=32, batch_size=5, ssim_retrieval_max_pairs=12 * 13 - 1,
                              alterations=NO_TRANSFORMED_SET).report
    assert report["ssim"]["recall_at_1"] is None and report["ssim"]["pair_auc"] == 1.0
    assert report["phash"]["recall_at_5"] == 1.0


def test_model_score_blocks_cover_every_combination_in_bounded_calls() -> None:
    model = random_model()
    queries, candidates = torch.randn(7, model.embedding_dim), torch.randn(5, model.embedding_dim)
    blocks = list(model_score_blocks(model, queries, candidates, torch.device("cpu"), pairs_per_call=3))
    assert [start for start, _ in blocks] == list(range(7))  # fewer pairs per call than candidates: one row a block
    got = np.vstack([block for _, block in blocks])
    with torch.no_grad():
        expected = torch.stack([model.score_embeddings(q.expand(5, -1), candidates) for q in queries]).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_error_by_style_uses_the_original_style(tmp_path: Path) -> None:
    paths = build_tiny_project(tmp_path)
    originals = collection(paths)
    originals["style"] = originals["style"].where(originals["id"] != "o12", None)  # an unlabelled painting
    by_style = evaluate_on_test(random_model(), resolved_pairs(paths), originals, image_size=32, batch_size=4,
                                alterations=NO_TRANSFORMED_SET).tables["error_by_style.csv"]
    assert dict(zip(by_style["style"], by_style["n"])) == {"Warm": 2, "unknown": 2}  # o11 is Warm, o12 unlabelled


def test_the_report_has_the_same_keys_on_any_data(tmp_path: Path) -> None:
    """metrics/evaluate.json is the headline: no key named after a style or a strength, a
    bounded number of leaves, the same keys whatever the data (breakdowns go to the CSVs)."""
    paths = build_tiny_project(tmp_path / "a")
    first = evaluate_on_test(
        random_model(), resolved_pairs(paths), collection(paths), image_size=32, batch_size=4
    ).report
    other_paths = build_tiny_project(tmp_path / "b")
    other_pairs = resolved_pairs(other_paths).assign(strength=lambda d: np.where(d.index % 2, 0.8, 0.1))
    other_originals = collection(other_paths).assign(style=lambda d: [f"Style_{i}" for i in range(len(d))])
    second = evaluate_on_test(random_model(1), other_pairs, other_originals, image_size=32, batch_size=4).report
    assert set(flat(first)) == set(flat(second))
    # 6 headline scorers x (6 figures + 8 threshold keys: two thresholds, the interval on each precision, the pairs)
    # + 6 scorers x 3 transformed figures + fused's calibration (12) + the shortlist's (8: its size, the sampled
    # queries, each ranking's fraction outside) + each search ranking's MRR over plain and transformed queries (3)
    # + the regression and count keys.
    assert len(flat(first)) <= 142
    data_words = {"Warm", "Cool", "Rare", "Style_0", "0.3", "0.8", "0.1", "unknown"}
    assert not [key for key in flat(second) for word in data_words if word in key]
    assert {f"{DEFAULT_MRR}.{name}" for name in ("model", "phash", "fused")} <= set(flat(first))
    for scorer in ("model", "descriptor", "phash", "dhash", "ssim", "fused"):
        assert {
            f"{scorer}.threshold_at_precision_90",
            f"{scorer}.threshold_at_precision_99",
            f"{scorer}.threshold_positives",
            f"{scorer}.threshold_negatives",
            f"transformed.{scorer}.pair_auc",
            f"transformed.{scorer}.recall_at_1",
            f"transformed.{scorer}.mrr",
        } <= set(flat(first))
    assert all(value is None or isinstance(value, (int, float)) for value in flat(second).values())


def test_evaluate_stage_writes_the_report_and_the_plots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The evaluate stage alone, on a saved model: every output dvc.yaml declares for it."""
    paths = build_tiny_project(tmp_path)
    describe_tiny_project(paths)
    save_weights(random_model(), tmp_path / "models/siamese/model.safetensors")
    (tmp_path / "models/siamese/card.json").write_text(json.dumps({"head_hidden": 8, "image_size": 32}))
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump({"ingest": {"source": "data/sample"}, "evaluate": {"batch_size": 8}})
    )
    monkeypatch.chdir(tmp_path)
    from stages import evaluate

    evaluate.main()
    report = json.loads(Path("metrics/evaluate.json").read_text())
    assert REPORT_KEYS | {
        "n_skipped_pairs",
        "mae_positive",
        "mae_negative",
        "model",
        "descriptor",
        "phash",
        "dhash",
        "ssim",
    } <= set(report)
    # Candidates come from data/ingested/manifest.parquet: all 13 originals; the descriptor score ranks.
    assert report["n_candidates"] == 13 and report["descriptor"]["mrr"] is not None
    assert list(pd.read_csv("metrics/evaluate/predictions.csv").columns) == PREDICTION_COLUMNS
    by_strength = pd.read_csv("metrics/evaluate/error_by_strength.csv")
    assert list(by_strength.columns) == ["strength", "mae", "n"] and by_strength["n"].sum() == 2  # the 2 positives
    assert set(pd.read_csv("metrics/evaluate/error_by_style.csv")["style"]) == {"Warm", "Cool"}
    assert len(pd.read_csv("metrics/evaluate/scorers.csv")) == 9
    with Image.open("metrics/evaluate/gallery.png") as gallery:
        assert gallery.format == "PNG"
    declared = yaml.safe_load((Path(__file__).resolve().parents[2] / "dvc.yaml").read_text())
    plot_files = {next(iter(p)) if isinstance(p, dict) else p for p in declared["plots"]}
    plot_files |= {
        f for p in declared["plots"] if isinstance(p, dict) for spec in p.values() for f in (spec.get("y") or {})
    }
    written = {
        f"metrics/evaluate/{name}"
        for name in (
            "predictions.csv",
            "error_by_strength.csv",
            "error_by_style.csv",
            "scorers.csv",
            "gallery.png",
            "transformed.csv",
            *(f"precision_recall/{s}.csv" for s in ("model", "descriptor", "phash", "dhash", "ssim")),
        )
    }
    assert written <= plot_files and all(Path(name).is_file() for name in written)
    # The model's thresholds beside the model, an output of this stage; the same as the report's.
    assert "models/verdict.json" in declared["stages"]["evaluate"]["outs"]
    shipped = json.loads(Path("models/verdict.json").read_text())
    assert [level["threshold"] for level in shipped["levels"]] == [report["model"]["threshold_at_precision_90"],
                                                                    report["model"]["threshold_at_precision_99"]]
    assert shipped["positives"] == report["model"]["threshold_positives"]
    # The search default is shipped with them (artsim search reads it there, bound to the weights); the
    # result file keeps the same ranking.
    search = json.loads(Path("metrics/evaluate/search.json").read_text())
    assert shipped["default_by"] == search["default_by"] == best_search_ranking(search[DEFAULT_MRR])
    assert search[DEFAULT_MRR] == report[DEFAULT_MRR] and set(search[DEFAULT_MRR]) == {"model", "phash", "fused"}
    # fused judged on the transformed set as every other scorer, per transform and pooled.
    transformed = pd.read_csv("metrics/evaluate/transformed.csv")
    assert transformed.query("scorer == 'fused'")["mrr"].notna().all()
    assert report["transformed"]["fused"]["mrr"] is not None
    # Every other scorer's beside it, so that a search ranked by pHash is marked by pHash's own thresholds.
    assert shipped["scorers"]["phash"]["levels"][0]["threshold"] == report["phash"]["threshold_at_precision_90"]


def test_evaluate_stage_ranks_with_the_saved_texture_stats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The descriptor score evaluate ranks with is the score stage's, texture statistics included:
    read from descriptor_score.json, never fitted again on the descriptors."""
    paths = build_tiny_project(tmp_path)
    describe_tiny_project(paths)
    save_weights(random_model(), tmp_path / "models/siamese/model.safetensors")
    (tmp_path / "models/siamese/card.json").write_text(json.dumps({"head_hidden": 8, "image_size": 32}))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"ingest": {"source": "data/sample"}}))
    saved_file = tmp_path / "data/pairs/descriptor_score.json"
    saved = json.loads(saved_file.read_text())
    saved["texture_stats"] = {"mean": [0.5] * 13, "std": [7.0] * 13}  # what no fit on these images gives
    saved_file.write_text(json.dumps(saved))
    monkeypatch.chdir(tmp_path)
    from stages import evaluate

    used = {}

    def capture(*args, descriptor_scorer, **kwargs):
        used["stats"] = descriptor_scorer.stats
        raise SystemExit(0)  # the rest of the stage is the test above's

    monkeypatch.setattr(evaluate, "evaluate_on_test", capture)
    with pytest.raises(SystemExit):
        evaluate.main()
    assert used["stats"].std.tolist() == [7.0] * 13 and used["stats"].mean.tolist() == [0.5] * 13


def test_stages_chain_on_tiny_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """finetune -> siamese -> evaluate from params.yaml, writing what dvc.yaml declares."""
    build_tiny_project(tmp_path)
    params = {
        "seed": 3,
        "ingest": {"source": "data/sample"},
        "finetune": {"image_size": 32, "epochs": 1, "batch_size": 8},
        "siamese": {"image_size": 32, "epochs": 1, "batch_size": 8, "head_hidden": 8},
        "evaluate": {"batch_size": 8},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    describe_tiny_project({"ingested": tmp_path / "data/ingested", "generated": tmp_path / "data/generated"})
    monkeypatch.chdir(tmp_path)
    from stages import evaluate, finetune, siamese

    for stage in (finetune, siamese, evaluate):
        stage.main()

    assert json.loads(Path("models/finetune/card.json").read_text())["classes"] == ["Cool", "Warm", "other"]
    finetune_metrics = json.loads(Path("metrics/finetune.json").read_text())
    assert {"test_accuracy", "test_macro_f1", "val_accuracy", "val_macro_f1"} <= set(finetune_metrics)
    assert Path("metrics/finetune/plots/metrics/train_loss.tsv").is_file()
    assert Path("metrics/siamese/plots/metrics/val_mse.tsv").is_file()
    # One summary per training stage, the best epoch's, without dvclive's `step` of the last epoch.
    siamese_metrics = json.loads(Path("metrics/siamese.json").read_text())
    assert {"train_mse", "val_mse", "best_epoch"} <= set(siamese_metrics) and "step" not in siamese_metrics
    assert "step" not in finetune_metrics
    assert not Path("metrics/siamese/metrics.json").exists() and not Path("metrics/finetune/metrics.json").exists()
    assert json.loads(Path("models/siamese/card.json").read_text())["head_hidden"] == 8
    assert Path("models/siamese/descriptor_score.json").is_file() and Path("models/siamese/README.md").is_file()
    report = json.loads(Path("metrics/evaluate.json").read_text())
    assert REPORT_KEYS <= set(report) and report["n_test_pairs"] == 4
    assert len(pd.read_csv("metrics/evaluate/predictions.csv")) == 4
    # dvclive must never write a dvc.yaml of its own next to ours.
    assert not list(tmp_path.rglob("dvc.yaml"))


def test_missing_imagenet_weights_stop_finetune_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_tiny_project(tmp_path)
    params = {"ingest": {"source": "data/sample"}, "finetune": {"weights": "imagenet"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    from stages import finetune

    with pytest.raises(SystemExit, match="finetune.weights: none"):
        finetune.main()
    assert not Path("metrics/finetune").exists() and not Path("models/finetune").exists()
