"""The held-out pairs of every variant against every original, and fused's calibration: fitted on val pairs only."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from pydantic import ValidationError
from sklearn.linear_model import LogisticRegression

from artsim.core.alterations import EVALUATION
from artsim.evaluate import evaluate_on_test, held_out
from artsim.evaluate import run as evaluate_run
from artsim.evaluate.calibration import (
    INVERSE_REGULARISATION,
    evidence_matrix,
    fit_calibration,
    held_out_verdicts,
    reliability_table,
)
from artsim.evaluate.calibration_pairs import calibration_variants
from artsim.evaluate.embedding import PAIRS_PER_CALL
from artsim.evaluate.held_out import held_out_pairs, held_out_scores
from artsim.params import EvaluateParams
from artsim.params.evaluate import DEFAULT_NEGATIVES_PER_QUERY
from tests.evaluate.test_run import NO_TRANSFORMED_SET, collection, descriptor_scorer, random_model
from tests.evaluate.test_transformed import with_val
from tests.support.tiny_project import build_tiny_project, resolved_pairs


def variants_and_originals(queries: int, originals: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    candidates = pd.DataFrame({"id": [f"o{i}" for i in range(originals)],
                               "path": [Path(f"o{i}.jpg") for i in range(originals)]})
    variants = pd.DataFrame({"generated_id": [f"g{i}" for i in range(queries)],
                             "generated_path": [Path(f"g{i}.jpg") for i in range(queries)],
                             "original_id": [f"o{(3 * i) % originals}" for i in range(queries)],
                             "positive": True})
    return variants, candidates


def test_each_variant_meets_its_source_and_every_other_original() -> None:
    variants, candidates = variants_and_originals(4, 7)
    negative_pair = variants.iloc[:1].assign(generated_id="n0", positive=False)  # a negative pair asks nothing
    gone = variants.iloc[:1].assign(generated_id="x0", original_id="unreadable")  # its source is no candidate
    pairs = held_out_pairs(pd.concat([variants, negative_pair, gone]), candidates, None, seed=0).frame()
    assert len(pairs) == 4 * 7 and pairs["positive"].sum() == 4
    for query, group in pairs.groupby("query_id"):
        source = variants.loc[variants["generated_id"] == query, "original_id"].item()
        assert set(group["original_id"]) == set(candidates["id"])  # every original once
        assert group.loc[group["positive"], "original_id"].tolist() == [source]


def test_a_cap_samples_the_unrelated_originals_with_the_seed_and_never_the_source() -> None:
    variants, candidates = variants_and_originals(5, 50)
    capped = held_out_pairs(variants, candidates, 6, seed=3).frame()
    assert len(capped) == 5 * 7 and capped["positive"].sum() == 5
    for query, group in capped.groupby("query_id"):
        source = variants.loc[variants["generated_id"] == query, "original_id"].item()
        unrelated = group.loc[~group["positive"], "original_id"]
        assert source not in set(unrelated) and unrelated.is_unique and len(unrelated) == 6
    pd.testing.assert_frame_equal(capped, held_out_pairs(variants, candidates, 6, seed=3).frame())
    assert not capped.equals(held_out_pairs(variants, candidates, 6, seed=4).frame())
    assert len(held_out_pairs(variants, candidates, 500, seed=3)) == 5 * 50  # a cap above the collection: all


@pytest.mark.parametrize("cap", [49, 50, 100])
def test_a_cap_at_least_the_other_originals_gives_the_very_pairs_of_no_cap(cap) -> None:
    """The default cap on a collection smaller than it (the embedded sample) changes no pair nor their order."""
    variants, candidates = variants_and_originals(5, 50)
    every = held_out_pairs(variants, candidates, None, seed=3).frame()
    pd.testing.assert_frame_equal(held_out_pairs(variants, candidates, cap, seed=3).frame(), every)
    assert len(every) == 5 * 50
    assert not held_out_pairs(variants, candidates, 48, seed=3).frame().equals(every)


def test_held_out_pairs_are_scored_a_chunk_at_a_time_with_the_scores_of_one_chunk(tmp_path: Path, monkeypatch) -> None:
    assert held_out.PAIRS_PER_CHUNK % PAIRS_PER_CALL == 0  # the stage's chunks are whole calls of the head
    paths = build_tiny_project(tmp_path)
    pairs, originals, described = resolved_pairs(paths), collection(paths), descriptor_scorer(paths)
    scored, chunk_sizes = [], []

    def recorded_scores(*args, **kwargs) -> dict[str, np.ndarray]:
        scored.append(held_out_scores(*args, **kwargs))
        return scored[-1]

    def counted_chunk(model, images, signatures, chunk, *args) -> dict[str, np.ndarray]:
        chunk_sizes.append(len(chunk))
        return chunk_scores(model, images, signatures, chunk, *args)

    monkeypatch.setattr(evaluate_run, "held_out_scores", recorded_scores)
    whole = evaluate_on_test(random_model(), pairs, originals, 32, 4, descriptor_scorer=described,
                             alterations=NO_TRANSFORMED_SET)
    one_chunk, scored[:] = list(scored), []
    chunk_scores = held_out._chunk_scores
    monkeypatch.setattr(held_out, "_chunk_scores", counted_chunk)
    monkeypatch.setattr(held_out, "PAIRS_PER_CHUNK", 7)
    chunked = evaluate_on_test(random_model(), pairs, originals, 32, 4, descriptor_scorer=described,
                               alterations=NO_TRANSFORMED_SET)
    assert max(chunk_sizes) == 7 and sum(chunk_sizes) == sum(len(scores["positive"]) for scores in scored) > 7 * 2
    assert [sorted(scores) for scores in scored] == [sorted(scores) for scores in one_chunk]
    assert {"ssim", "descriptor"} <= set(scored[1])  # every scorer of the test pairs went through the chunks
    for scores, whole_scores in zip(scored, one_chunk, strict=True):
        for name, values in scores.items():
            # The head's float32 sums round differently in batches of 7; the chunk of the stage is one head batch.
            np.testing.assert_allclose(values, whole_scores[name], rtol=1e-6 if name == "model" else 0, err_msg=name)
    assert chunked.thresholds.keys() == whole.thresholds.keys()


def separable_scores(rng: np.random.Generator, derived: int, unrelated: int, shift: float = 0.0) -> dict:
    positive = np.r_[np.ones(derived, dtype=bool), np.zeros(unrelated, dtype=bool)]
    model = np.where(positive, rng.normal(0.7, 0.1, positive.size), rng.normal(0.4, 0.1, positive.size)) + shift
    phash = np.where(positive, rng.normal(0.8, 0.08, positive.size), rng.normal(0.5, 0.08, positive.size))
    return {"positive": positive, "model": model, "phash": phash, "dhash": phash.copy()}


def test_the_calibration_is_fitted_on_val_pairs_only_and_fitting_on_test_would_move_it() -> None:
    rng = np.random.default_rng(0)
    val, test = separable_scores(rng, 20, 300), separable_scores(rng, 21, 588)
    plain = held_out_verdicts(val, test, seed=0)
    moved = {**test, "model": test["model"] + rng.normal(0.0, 0.3, test["model"].size)}  # test pairs perturbed
    again = held_out_verdicts(val, moved, seed=0)
    assert again.calibration == plain.calibration  # the coefficients do not move
    assert again.report["brier"] != plain.report["brier"]  # ... though the test figures do
    assert again.thresholds["fused"] != plain.thresholds["fused"]
    on_test = fit_calibration(moved, moved["positive"], seed=0)
    assert on_test.coefficients != pytest.approx(plain.calibration.coefficients, rel=0.05)  # a test fit would move
    assert (plain.calibration.positives, plain.calibration.negatives) == (20, 300)
    assert plain.report["fitted_on_val"] == {"derived_plain": 20, "unrelated_plain": 300, "derived_altered": 0,
                                             "unrelated_altered": 0, "n_alterations": 0}  # no kind given: plain
    assert (plain.thresholds["fused"].positives, plain.thresholds["fused"].negatives) == (21, 588)


def test_the_calibrated_probability_is_scikit_learns_and_the_reliability_table_counts_every_pair() -> None:
    rng = np.random.default_rng(1)
    val, test = separable_scores(rng, 30, 200), separable_scores(rng, 21, 588)
    found = held_out_verdicts(val, test, seed=0)
    reference = LogisticRegression(C=INVERSE_REGULARISATION, max_iter=1000).fit(
        evidence_matrix(val), val["positive"])
    probability = reference.predict_proba(evidence_matrix(test))[:, 1]
    np.testing.assert_allclose(found.calibration.probability(test), probability, rtol=1e-4, atol=1e-6)
    assert found.calibration.features == ("model", "phash")  # what a search has for every original
    table = found.tables["reliability.csv"]
    assert table["pairs"].sum() == 21 + 588 and table["mean_p"].is_monotonic_increasing
    assert 0 <= found.report["brier"] < found.report["brier_base_rate"]  # it beats always answering the base rate
    # Outside the model's shortlist (no head score: -inf) the model's evidence counts as its lowest, 0.
    outside = found.calibration.probability({"model": np.array([-np.inf]), "phash": np.array([0.9])})
    assert outside == pytest.approx(found.calibration.probability({"model": np.zeros(1), "phash": np.array([0.9])}))


def test_one_class_of_val_pairs_fits_no_calibration() -> None:
    rng = np.random.default_rng(2)
    only_derived = {name: values[:5] for name, values in separable_scores(rng, 5, 5).items()}
    found = held_out_verdicts(only_derived, separable_scores(rng, 4, 40), seed=0)
    assert found.calibration is None and "fused" not in found.thresholds and "reliability.csv" not in found.tables
    assert found.report["brier"] is None and found.report["coefficients"] == {"model": None, "phash": None}
    assert set(found.report) == set(held_out_verdicts(*(separable_scores(rng, 5, 5) for _ in "ab"), seed=0).report)
    assert reliability_table(np.zeros(0, dtype=bool), np.zeros(0)).empty


def fused_transformed(evaluation) -> pd.DataFrame:
    table = evaluation.tables["transformed.csv"]
    return table[table["scorer"] == "fused"].set_index("transform")[["pair_auc", "recall_at_1", "mrr", "n_pairs"]]


def test_evaluate_fits_fused_on_val_pairs_and_perturbed_test_pairs_do_not_move_it(tmp_path: Path) -> None:
    paths = build_tiny_project(tmp_path)
    pairs, originals = resolved_pairs(paths), collection(paths)
    plain = evaluate_on_test(random_model(), pairs, originals, 32, 4)
    # Another transformed set (one alteration, not seven): the calibration is the same, the transformed figures not.
    mirrored = evaluate_on_test(random_model(), pairs, originals, 32, 4, alterations={"mirror": EVALUATION["mirror"]})
    assert mirrored.calibration == plain.calibration
    assert list(fused_transformed(mirrored).index) == ["mirror", "all"]
    # Each test variant replaced by an exact copy of its source: the test pairs change, the val pairs do not.
    test_variants = pairs[(pairs["split"] == "test") & pairs["positive"]]
    for variant, source in zip(test_variants["generated_path"], test_variants["original_path"]):
        shutil.copyfile(source, variant)
    again = evaluate_on_test(random_model(), pairs, originals, 32, 4)
    assert plain.calibration is not None and again.calibration == plain.calibration
    assert again.report["calibration"]["brier"] != plain.report["calibration"]["brier"]
    # fused is judged on the transformed set with that calibration (its pairs scored), and moves with its data.
    assert (fused_transformed(plain)["n_pairs"] > 0).all() and fused_transformed(plain)["mrr"].notna().all()
    assert not fused_transformed(again).equals(fused_transformed(plain))
    # Fitted on every val variant with its source and every other original, plain and under each alteration.
    val_variants, kinds = int(((pairs["split"] == "val") & pairs["positive"]).sum()), 1 + len(EVALUATION)
    assert (plain.calibration.positives, plain.calibration.negatives) == (kinds * val_variants,
                                                                          kinds * val_variants * (len(originals) - 1))
    assert plain.report["calibration"]["fitted_on_val"] == {
        "derived_plain": val_variants, "unrelated_plain": val_variants * (len(originals) - 1),
        "derived_altered": len(EVALUATION) * val_variants,
        "unrelated_altered": len(EVALUATION) * val_variants * (len(originals) - 1), "n_alterations": len(EVALUATION)}
    assert "fused" in plain.thresholds and set(plain.tables["reliability.csv"].columns) == {"mean_p", "derived_share",
                                                                                           "pairs"}


def val_project(tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    paths = build_tiny_project(tmp_path)
    return with_val(resolved_pairs(paths)), collection(paths, mostly_test=True)


def test_fitting_on_mirrored_val_pairs_makes_fused_find_the_mirrored_copies_plain_val_pairs_hide(tmp_path) -> None:
    """A mirror defeats pHash but not the model (mirror-invariant by construction): fitted on plain val pairs alone,
    where pHash separates, fused leans on pHash and misses mirrored test copies; fitted on the val pairs mirrored
    too (as by default: under every held-out alteration), it learns that a high model score with a low pHash
    similarity is a copy."""
    pairs, originals = val_project(tmp_path)
    mirror = {"mirror": EVALUATION["mirror"]}
    plain_fit = evaluate_on_test(random_model(), pairs, originals, 32, 4, alterations=mirror,
                                 calibration_alterations={})
    altered_fit = evaluate_on_test(random_model(), pairs, originals, 32, 4, alterations=mirror)
    judged = altered_fit.tables["transformed.csv"].set_index(["transform", "scorer"])
    assert judged.at[("mirror", "model"), "recall_at_1"] > judged.at[("mirror", "phash"), "recall_at_1"]
    before, after = fused_transformed(plain_fit).loc["mirror"], fused_transformed(altered_fit).loc["mirror"]
    assert after["recall_at_1"] > before["recall_at_1"] and after["pair_auc"] > before["pair_auc"]
    model_weight = [fit.calibration.coefficients[0] / fit.calibration.coefficients[1] for fit in (plain_fit,
                                                                                                    altered_fit)]
    assert altered_fit.calibration.features == ("model", "phash") and model_weight[1] > model_weight[0]
    counts = [fit.report["calibration"]["fitted_on_val"] for fit in (plain_fit, altered_fit)]
    assert counts[0]["n_alterations"] == counts[0]["derived_altered"] == 0
    assert counts[1]["n_alterations"] == len(EVALUATION)
    assert counts[1]["derived_altered"] / len(EVALUATION) == counts[1]["derived_plain"] == counts[0]["derived_plain"]
    assert counts[1]["derived_plain"] > 0
    assert counts[1]["unrelated_altered"] / len(EVALUATION) == counts[1]["unrelated_plain"] > 0


def test_an_altered_val_pair_is_scored_as_the_altered_file_would_be_and_no_test_pair_is_fitted(tmp_path,
                                                                                            monkeypatch) -> None:
    """The altered val pairs are the plain val pairs with the variant altered in memory and read as any image: the
    very scores of the plain pairs once the altered variant is written over the file. No test variant is altered
    for the fit (the fitting pairs are the val pairs, kind by kind)."""
    pairs, originals = val_project(tmp_path)
    fitted_on: list[dict[str, np.ndarray]] = []

    def recorded(val, test, seed):
        fitted_on.append(val)
        return held_out_verdicts(val, test, seed)

    monkeypatch.setattr(evaluate_run, "held_out_verdicts", recorded)
    evaluate_on_test(random_model(), pairs, originals, 32, 4, alterations={},
                     calibration_alterations={"mirror": EVALUATION["mirror"]})
    val_variants = pairs[(pairs["split"] == "val") & pairs["positive"]]
    for path in val_variants["generated_path"]:
        mirrored = EVALUATION["mirror"].apply(Image.open(path).convert("RGB"))
        mirrored.save(path, format="PNG")  # lossless: the file holds the very pixels altered in memory
    evaluate_on_test(random_model(), pairs, originals, 32, 4, alterations={}, calibration_alterations={})
    altered, plain_of_mirrored = fitted_on
    kind = altered["kind"]
    assert list(dict.fromkeys(kind)) == ["plain", "mirror"] and (kind == "plain").sum() == (kind == "mirror").sum()
    assert set(altered) == {"positive", "model", "phash", "dhash", "kind"}
    for name in ("positive", "phash", "dhash", "model"):
        np.testing.assert_allclose(altered[name][kind == "mirror"], plain_of_mirrored[name],
                                   rtol=1e-6 if name == "model" else 0, err_msg=name)
    assert altered["positive"].sum() == 2 * len(val_variants)  # the val variants only, plain and mirrored


@pytest.mark.parametrize("bad", [0, -3, "all", 2.5])
def test_a_bad_cap_on_the_unrelated_originals_is_refused_naming_its_key(bad) -> None:
    with pytest.raises(ValidationError, match="negatives_per_query"):
        EvaluateParams(negatives_per_query=bad)
    assert EvaluateParams().negatives_per_query == DEFAULT_NEGATIVES_PER_QUERY == 100  # linear pairs by default
    assert EvaluateParams(negatives_per_query=None).negatives_per_query is None  # null: every other original


def test_held_out_pairs_are_rows_whose_chunks_write_the_table_of_every_pair() -> None:
    """The pairs are kept as row numbers; a chunk's table is the same rows of the whole table, so scoring chunk by
    chunk reads every pair once, as it was read from one table."""
    variants, candidates = variants_and_originals(9, 40)
    pairs = held_out_pairs(variants.sample(frac=1, random_state=0), candidates, 5, seed=1)
    whole = pairs.frame()
    assert len(pairs) == len(whole) == 9 * 6
    chunks = pd.concat([pairs.frame(start, start + 7) for start in range(0, len(pairs), 7)], ignore_index=True)
    pd.testing.assert_frame_equal(chunks, whole)
    assert list(whole["query_id"]) == sorted(whole["query_id"])  # variants in id order, whatever the input's order
    assert sum(array.nbytes for array in (pairs.query_rows, pairs.columns, pairs.positive)) == 17 * len(pairs)


def test_no_variant_gives_no_pair() -> None:
    variants, candidates = variants_and_originals(3, 5)
    pairs = held_out_pairs(variants.iloc[:0], candidates, 2, seed=0)
    assert len(pairs) == 0 and list(pairs.frame().columns) == held_out.PAIR_COLUMNS and pairs.frame().empty


def test_the_calibration_is_fitted_on_a_seeded_sample_of_val_variants_at_most_the_cap(tmp_path) -> None:
    """The fit, and the reading of its variants under every alteration, stay bounded at the study's scale: at most
    `calibration_max_queries` val variants (their derived pairs and theirs only), the same sample for the same seed."""
    val = pd.DataFrame({"generated_id": [f"g{i}" for i in range(40)] * 2, "positive": [True] * 40 + [False] * 40,
                        "original_id": [f"o{i}" for i in range(40)] + [f"o{(i + 1) % 40}" for i in range(40)]})
    sample = calibration_variants(val, 7, seed=3)
    assert len(sample) == 7 and sample["positive"].all() and sample["generated_id"].is_unique
    assert sample.equals(calibration_variants(val, 7, seed=3))
    assert not sample.equals(calibration_variants(val, 7, seed=4))
    for cap in (40, 41, None):  # a cap at least the val variants: every derived pair
        assert calibration_variants(val, cap, seed=3).equals(val[val["positive"]])
    pairs, originals = val_project(tmp_path)
    fitted = [evaluate_on_test(random_model(), pairs, originals, 32, 4, alterations={}, calibration_max_queries=cap,
                               seed=5).report["calibration"]["fitted_on_val"] for cap in (1, None)]
    val_variants = pairs.loc[(pairs["split"] == "val") & pairs["positive"], "generated_id"].nunique()
    assert fitted[0]["derived_plain"] == 1 < val_variants == fitted[1]["derived_plain"]
    assert fitted[0]["derived_altered"] == len(EVALUATION)  # the one variant under every alteration
