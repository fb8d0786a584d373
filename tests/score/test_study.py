"""score.weights (numbers or `fit`), and the descriptor study the score stage writes."""
from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from artsim.core.errors import NotEnoughData
from artsim.core.metrics import true_source_ranks
from artsim.describe.kernels import TextureStats
from artsim.describe.registry import DESCRIPTORS
from artsim.describe.table import Descriptors
from artsim.params import DESCRIPTOR_NAMES, DescribeParams, ParamsError, ScoreWeights, parse_params
from artsim.score.fit import fit_weights
from artsim.score.scorer import DescriptorScorer
from artsim.score.shortlist import SCORE, Proxy, shortlist_source_ranks
from artsim.score.similarity import PAIR_COLUMNS, DescriptorSet, combine, cross_similarities, score_dataset
from artsim.score.study import descriptor_source_retrieval, descriptor_study
from tests.params.test_params import committed_params
from tests.score.test_similarity import fake_manifests, lay_out_score_inputs

PARAMS = DescribeParams()
STATS = TextureStats(mean=np.zeros(13), std=np.ones(13))


# --- score.weights ------------------------------------------------------------------------------

def test_unknown_weight_name_fails_naming_the_key_and_the_allowed_names():
    raw = committed_params()
    raw["score"]["weights"] = {"color": 0.5, "colour": 0.5}
    with pytest.raises(ParamsError) as error:
        parse_params(raw)
    message = str(error.value)
    assert "score.weights" in message and "'colour'" in message
    assert all(name in message for name in DESCRIPTOR_NAMES)


def test_weights_name_any_candidate_or_fit():
    raw = committed_params()
    raw["score"]["weights"] = {"lbp": 1.0, "phash": 0.5}
    assert parse_params(raw).score.weights.as_dict() == {"lbp": 1.0, "phash": 0.5}
    raw["score"]["weights"] = "fit"
    assert parse_params(raw).score.weights == "fit"
    raw["score"]["weights"] = "learn"
    with pytest.raises(ParamsError, match="score.weights: .*'fit'"):
        parse_params(raw)


# --- fitted weights -----------------------------------------------------------------------------

ANTI = "texture"  # a descriptor LOWER on positive pairs: an unconstrained fit would weigh it negatively


def one_informative(informative: str, count: int = 600, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Similarities of every candidate: only `informative` higher on positive pairs (noisily),
    ANTI lower on them, the others noise."""
    rng = np.random.default_rng(seed)
    positive = rng.random(count) < 0.5
    table = pd.DataFrame({name: rng.random(count) for name in DESCRIPTOR_NAMES})
    table[informative] = np.clip(np.where(positive, 0.6, 0.4) + rng.normal(0, 0.1, count), 0, 1)
    table[ANTI] = np.clip(np.where(positive, 0.45, 0.55) + rng.normal(0, 0.1, count), 0, 1)
    return table, positive


@pytest.mark.parametrize("informative", ["lbp", "color", "layout"])
def test_fit_recovers_the_one_informative_descriptor(informative):
    table, positive = one_informative(informative)
    weights = fit_weights(table, positive)
    assert set(weights) == set(DESCRIPTOR_NAMES)
    assert all(w >= 0 for w in weights.values()) and weights[ANTI] == 0.0
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-12)
    assert max(weights, key=weights.get) == informative and weights[informative] > 0.8


def test_fit_fails_clearly_without_both_classes_or_without_any_useful_descriptor():
    table, positive = one_informative("lbp")
    with pytest.raises(NotEnoughData, match="score.weights: fit needs positive and negative train pairs"):
        fit_weights(table, np.ones(len(table), dtype=bool))
    upside_down = table.assign(**{name: 1.0 - table[name] for name in DESCRIPTOR_NAMES})
    only_lbp = upside_down[["lbp"]]  # lower on positives: no non-negative weight helps
    with pytest.raises(NotEnoughData, match="no descriptor whose similarity is higher"):
        fit_weights(only_lbp, positive)


def full_descriptors(ids: list[str], seed: int = 0) -> dict[str, Descriptors]:
    """Random vectors of the registered lengths for every candidate."""
    rng = np.random.default_rng(seed)
    out = {}
    for image_id in ids:
        vectors = {name: rng.random(DESCRIPTORS[name].length(PARAMS)) for name in DESCRIPTOR_NAMES}
        vectors["phash"] = (vectors["phash"] > 0.5).astype(np.float64)
        out[image_id] = Descriptors(**vectors)
    return out


def copy_source(descs: dict[str, Descriptors], generated: pd.DataFrame, names: set[str], where: pd.Series) -> None:
    """Variants (rows `where`) take their source's vectors of `names`: those candidates find the source."""
    for variant_id, original_id in zip(generated.loc[where, "id"], generated.loc[where, "original_id"]):
        vectors = dict(descs[variant_id].vectors)
        vectors.update({name: descs[original_id][name].copy() for name in names})
        descs[variant_id] = Descriptors(**vectors)


def _fitted_where_train_and_held_out_disagree(train: int):
    """Scored with `fit` where train pairs are told apart by lbp alone and val/test pairs by colour alone."""
    originals, generated = fake_manifests({"train": train, "val": 3, "test": 3})
    descs = full_descriptors([*originals["id"], *generated["id"]])
    in_train = generated["original_id"].str.startswith("train")
    copy_source(descs, generated, {"lbp"}, in_train)
    copy_source(descs, generated, {"color"}, ~in_train)
    scored = score_dataset(originals, generated, DescriptorSet.of(descs), "fit", negatives=1, seed=0)
    return originals, generated, descs, scored


def test_fit_learns_on_the_train_pairs_only_and_scores_every_pair_with_its_weights():
    originals, generated, descs, scored = _fitted_where_train_and_held_out_disagree(train=8)
    weights = scored.weights.as_dict()
    assert scored.fitted and max(weights, key=weights.get) == "lbp" and weights["color"] < 0.05
    assert list(scored.pairs.columns) == PAIR_COLUMNS
    expected = combine({n: scored.pairs[n].to_numpy() for n in DESCRIPTOR_NAMES}, weights)
    np.testing.assert_allclose(scored.pairs["score"], expected, atol=1e-12)


# --- the study ----------------------------------------------------------------------------------

def test_a_descriptor_that_always_finds_the_source_gets_auc_and_recall_one():
    originals, generated = fake_manifests({"train": 6, "val": 3, "test": 3})
    descs = full_descriptors([*originals["id"], *generated["id"]])
    copy_source(descs, generated, {"layout"}, generated["id"] == generated["id"])
    weights = ScoreWeights(layout=1.0, color=1.0)
    scored = score_dataset(originals, generated, DescriptorSet.of(descs), weights, negatives=1, seed=0)
    study = descriptor_study(scored.pairs, DescriptorSet.of(descs), originals, generated, scored.stats,
                             scored.weights, False, queries=1000, seed=0, shortlist=1000)
    table = study.table.set_index("descriptor")
    assert list(table.index) == [*DESCRIPTOR_NAMES, "score"]
    assert table.loc["layout", ["auc", "recall_at_1", "mrr"]].tolist() == [1.0, 1.0, 1.0]
    assert table.loc["score", "recall_at_1"] == 1.0  # layout's weight carries it past random colour
    assert (table.loc[["lab", "lbp", "texture"], "recall_at_1"] < 0.7).all()  # random vectors: about 1 in 12
    assert table.loc["layout", "weight"] == 1.0 and table.loc["lbp", "weight"] == 0.0
    redundancy = study.redundancy.set_index("descriptor")
    assert list(redundancy.columns) == [*DESCRIPTOR_NAMES, "score"]
    np.testing.assert_allclose(np.diag(redundancy.to_numpy(dtype=float)), 1.0)
    np.testing.assert_allclose(redundancy.to_numpy(dtype=float), redundancy.to_numpy(dtype=float).T, atol=1e-12)
    heldout_variants = int((~generated["original_id"].str.startswith("train")).sum())  # the queries: val/test only
    assert study.headline["retrieval"] == {"queries": heldout_variants, "candidates": len(originals),
                                           "score_recall_at_1": 1.0, "score_mrr": 1.0, "shortlist": 1000,
                                           "score_outside_shortlist": 0.0}
    json.dumps(study.headline, allow_nan=False)


def test_retrieval_takes_a_seeded_bounded_sample_of_queries_and_ranks_ties_against_the_source():
    originals, generated = fake_manifests({"train": 6, "test": 3})
    descs = full_descriptors([*originals["id"], *generated["id"]])
    # Every variant and every original the same: all candidates tie, so no source is found first.
    same = descs[originals["id"].iloc[0]]
    descs = DescriptorSet.of({i: same for i in descs})
    first = descriptor_source_retrieval(descs, originals, generated, STATS, ScoreWeights(), queries=5, seed=3,
                                        shortlist=100)
    assert first.queries == 5 and first.candidates == len(originals)
    assert first.recall_at_1["color"] == 0.0 and first.mrr["color"] == pytest.approx(1 / len(originals))


def test_descriptor_scorer_uses_the_weights_it_was_saved_with(tmp_path):
    weights = ScoreWeights(lbp=0.75, phash=0.25)
    DescriptorScorer(DescribeParams(size=64), weights, STATS).save(tmp_path / "descriptor_score.json")
    scorer = DescriptorScorer.load(tmp_path / "descriptor_score.json")
    rng = np.random.default_rng(0)
    from PIL import Image
    a, b = (Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)) for _ in range(2))
    sims = scorer.similarities(scorer.describe_image(a), scorer.describe_image(b))
    assert set(sims) == {"lbp", "phash"}
    assert scorer.score(sims) == pytest.approx(0.75 * sims["lbp"] + 0.25 * sims["phash"], abs=1e-12)


def test_score_stage_with_fit_saves_the_fitted_weights_and_writes_the_study(tmp_path, monkeypatch):
    from stages import score as score_stage

    originals, generated = fake_manifests({"train": 6, "val": 2, "test": 2})
    descs = full_descriptors([*originals["id"], *generated["id"]])
    copy_source(descs, generated, {"orientation"}, generated["id"] == generated["id"])
    lay_out_score_inputs(tmp_path, originals, generated, descs)
    params = (tmp_path / "params.yaml").read_text()
    weights_block = re.search(r"^  weights:\n(?:    \w+: [0-9.]+\n)+", params, flags=re.MULTILINE)
    (tmp_path / "params.yaml").write_text(params.replace(weights_block.group(0), "  weights: fit\n"))
    monkeypatch.chdir(tmp_path)
    score_stage.main()
    saved = DescriptorScorer.load(tmp_path / "data/pairs/descriptor_score.json").weights.as_dict()
    metrics = json.loads((tmp_path / "metrics/score.json").read_text())
    assert max(saved, key=saved.get) == "orientation"
    assert metrics["study"]["weights"] == pytest.approx(saved) and metrics["study"]["weights_fitted"] is True
    study = pd.read_csv(tmp_path / "metrics/score/descriptor_study.csv").set_index("descriptor")
    assert study.loc["orientation", "recall_at_1"] == 1.0 and study.loc["score", "auc"] == 1.0
    assert (tmp_path / "metrics/score/redundancy.csv").is_file()


def test_the_study_headline_has_the_same_few_keys_on_any_data():
    from artsim.score.report import score_report
    from tests.score.test_report import flat

    headlines = []
    for per_split, drop_variants in (({"train": 6, "test": 3}, False), ({"train": 2, "val": 1, "test": 1}, True)):
        originals, generated = fake_manifests(per_split)
        descs = full_descriptors([*originals["id"], *generated["id"]])
        scored = score_dataset(originals, generated, DescriptorSet.of(descs), "fit", negatives=1, seed=0)
        # Without variants in the descriptors the study has no query: the keys must not change.
        study_descs = {i: d for i, d in descs.items() if i in set(originals["id"])} if drop_variants else descs
        study = descriptor_study(scored.pairs, DescriptorSet.of(study_descs), originals, generated, scored.stats,
                                 scored.weights, scored.fitted, queries=10, seed=0, shortlist=1000)
        headlines.append({**score_report(scored.pairs), "study": study.headline})
    assert set(flat(headlines[0])) == set(flat(headlines[1]))
    assert len(flat(headlines[0])) <= 50
    assert headlines[1]["study"]["retrieval"]["queries"] == 0
    json.dumps(headlines, allow_nan=False)


def test_the_study_measures_fitted_weights_on_held_out_pairs_and_queries_only():
    # Train pairs are told apart by lbp alone, val/test pairs by colour alone: `fit` learns lbp,
    # which says nothing about held-out pairs. Figures that included the train pairs (the fitting
    # data) would make the fitted score look good; the study must show it at chance.
    originals, generated, descs, scored = _fitted_where_train_and_held_out_disagree(train=12)
    assert max(scored.weights.as_dict(), key=scored.weights.as_dict().get) == "lbp"
    all_pairs_auc = roc_auc_score(scored.pairs["positive"], scored.pairs["score"])
    assert all_pairs_auc > 0.85  # in-sample: what the study must not report
    study = descriptor_study(scored.pairs, DescriptorSet.of(descs), originals, generated, scored.stats,
                             scored.weights, True, queries=1000, seed=0, shortlist=1000)
    table = study.table.set_index("descriptor")
    assert table.loc["score", "auc"] < 0.75 and table.loc["lbp", "auc"] < 0.75
    assert table.loc["color", ["auc", "recall_at_1", "mrr"]].tolist() == [1.0, 1.0, 1.0]
    assert table.loc["score", "recall_at_1"] < 0.5  # lbp finds no held-out source; colour weighs too little
    heldout_variants = int((~generated["original_id"].str.startswith("train")).sum())
    assert study.headline["heldout_pairs"] == 2 * heldout_variants
    assert study.headline["retrieval"] == {
        "queries": heldout_variants, "candidates": len(originals),  # candidates: the originals of every split
        "score_recall_at_1": table.loc["score", "recall_at_1"], "score_mrr": table.loc["score", "mrr"],
        "shortlist": 1000, "score_outside_shortlist": 0.0}
    assert study.headline["score_auc"] == table.loc["score", "auc"]


# --- retrieval on a shortlist -------------------------------------------------------------------

def _retrieval_problem(originals: int = 12, seed: int = 0):
    """Queries (variants) with layout copied from their source, the rest random; their sources' rows."""
    manifest, generated = fake_manifests({"train": originals})
    descs = full_descriptors([*manifest["id"], *generated["id"]], seed=seed)
    copy_source(descs, generated, {"layout"}, generated["id"] == generated["id"])
    candidates = DescriptorSet.stack([descs[i] for i in manifest["id"]])
    queries = DescriptorSet.stack([descs[i] for i in generated["id"]])
    targets = generated["original_id"].map({i: row for row, i in enumerate(manifest["id"])}).to_numpy()
    return queries, candidates, targets


def _full_ranks(queries, candidates, targets, weights):
    """Every query against every candidate, as the study ranked before the shortlist."""
    sims = cross_similarities(queries, candidates, STATS)
    sims[SCORE] = combine(sims, weights)
    return {name: true_source_ranks(matrix, targets) for name, matrix in sims.items()}


@pytest.mark.parametrize("shortlist", [12, 1000])
def test_a_shortlist_holding_every_original_gives_the_full_ranking_exactly(shortlist):
    queries, candidates, targets = _retrieval_problem()
    weights = ScoreWeights(layout=0.5, color=0.3, phash=0.2)
    ranked = shortlist_source_ranks(queries, candidates, targets, STATS, weights, shortlist, max_pairs=50)
    full = _full_ranks(queries, candidates, targets, weights)
    assert set(ranked.ranks) == set(full)
    for name in full:
        assert ranked.ranks[name].tolist() == full[name].tolist(), name
        assert ranked.outside[name] == 0.0


def test_a_short_shortlist_runs_the_exact_kernels_on_the_shortlists_not_all_originals_and_reports_misses(
        monkeypatch):
    queries, candidates, targets = _retrieval_problem(originals=60)
    weights = ScoreWeights(layout=0.5, color=0.5)
    calls = []
    for name, entry in list(DESCRIPTORS.items()):
        def counting(a, b, stats, kernel=entry.cross):
            calls.append((len(a), len(b)))
            return kernel(a, b, stats)
        monkeypatch.setitem(DESCRIPTORS, name, dataclasses.replace(entry, cross=counting))
    shortlist = 3
    ranked = shortlist_source_ranks(queries, candidates, targets, STATS, weights, shortlist)
    monkeypatch.undo()
    # one query at a time against its shortlist, by each descriptor and the score's two: never all 60
    assert len(calls) == len(queries) * (len(DESCRIPTOR_NAMES) + 2)
    assert set(calls) == {(1, shortlist)}
    full = _full_ranks(queries, candidates, targets, weights)
    assert ranked.outside["layout"] == 0.0 and ranked.ranks["layout"].tolist() == full["layout"].tolist()
    # random vectors: the proxy's 3 of 60 miss most sources, and says so
    assert 0.5 < ranked.outside["color"] < 1.0
    for name in full:  # a shortlist only ever leaves out candidates that might outrank the source
        assert (ranked.ranks[name] <= full[name]).all() and (ranked.ranks[name] <= shortlist).all()


@pytest.mark.parametrize("shortlist", [3, 60])
def test_candidates_read_in_place_as_rows_of_every_image_rank_as_a_copy_of_them_does(shortlist):
    """The study's candidates are the originals' rows of the matrices that hold every image (not a copy of them,
    a copy per original at the study's scale): ranks and misses are those of the copied candidates."""
    queries, candidates, targets = _retrieval_problem(originals=60)
    every = DescriptorSet({name: np.concatenate([queries[name], candidates[name]]) for name in candidates.names})
    rows = np.arange(len(queries), len(every))[::-1].copy()  # the candidates after the queries, reversed
    reversed_targets = len(candidates) - 1 - targets
    weights = ScoreWeights(layout=0.5, color=0.5)
    in_place = shortlist_source_ranks(queries, every, reversed_targets, STATS, weights, shortlist, rows=rows)
    copied = shortlist_source_ranks(queries, every.take(rows), reversed_targets, STATS, weights, shortlist)
    assert in_place.outside == copied.outside
    for name, ranks in copied.ranks.items():
        assert in_place.ranks[name].tolist() == ranks.tolist(), name
    if shortlist == 3:  # the proxy misses some of the random descriptors' sources: the rows are not all alike
        assert 0.0 < in_place.outside["color"] < 1.0


def test_a_proxy_fitted_a_descriptor_at_a_time_has_the_bits_of_one_standardised_on_all_its_columns_at_once():
    """The score's proxy standardises each descriptor's columns in turn (one descriptor's transients, not all of
    them): the same floats as standardising the concatenated candidates, a one-column descriptor included (numpy
    sums a lone column pairwise, a column of a wider matrix row by row)."""
    rng = np.random.default_rng(0)
    one, wide = rng.random((3000, 1)) * 1e3, rng.random((3000, 5))
    rows = np.arange(0, 3000, 2)[::-1]
    proxy = Proxy.fit([(one, 0.5), (wide, 2.0)], rows)
    stacked = np.concatenate([one[rows], wide[rows]], axis=1)
    mean, spread = stacked.mean(0), stacked.std(0)
    scale = np.concatenate([np.full(1, 0.5), np.full(5, 2.0)]) / np.where(spread > 0, spread, 1.0)
    assert proxy.mean.tobytes() == mean.tobytes() and proxy.scale.tobytes() == scale.tobytes()
    assert proxy.candidates.tobytes() == ((stacked - mean) * scale).astype(np.float32).tobytes()


def test_a_weighted_descriptor_the_images_lack_fails_naming_it_before_any_ranking():
    queries, candidates, targets = _retrieval_problem()
    without_layout = DescriptorSet({n: v for n, v in candidates.vectors.items() if n != "layout"})
    with pytest.raises(ValueError, match=r"weighted descriptors \['layout'\] were not described"):
        shortlist_source_ranks(queries, without_layout, targets, STATS, ScoreWeights(layout=1.0), 3)
