"""Retrieval in O(queries x shortlist): every scorer's figures equal those of scoring every candidate when the
shortlist holds them all, and the share of sources that fell outside a shorter one is reported."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from artsim.core.fusion import fused_scores
from artsim.core.hashes import hash_similarity
from artsim.evaluate import shortlists
from artsim.evaluate.peers import HASH_NAMES, SSIM_SIZE, ssim_proxy, ssim_similarity
from artsim.evaluate.scorer_inputs import DescriptorWeighting, ScorerInputs, Shortlisting, score_blocks
from artsim.evaluate.shortlists import descriptor_proxy
from artsim.evaluate.source_retrieval import (
    OUTSIDE_SHORTLIST,
    RetrievalTask,
    Shortlisted,
    retrieval_report,
    shortlisted_ranks,
)
from artsim.evaluate.transformed import OVERALL
from artsim.index import DEFAULT_SHORTLIST
from artsim.index.query import unit_rows
from artsim.learn.models import DEFAULT_EMBEDDING_DIM, SiameseRegressor
from artsim.params import ParamsError, parse_params
from artsim.params.evaluate import DEFAULT_EVALUATE_SHORTLIST
from artsim.score.similarity import DescriptorSet, TextureStats, cross_scores
from tests.evaluate.test_run import NO_TRANSFORMED_SET, collection, descriptor_scorer, mostly_test, random_model
from tests.params.test_params import committed_params
from tests.support.full_ranking import model_score_blocks
from tests.support.tiny_project import build_tiny_project, resolved_pairs

N_QUERIES, N_CANDIDATES = 12, 29
WEIGHTS = {"color": 0.5, "texture": 0.25, "edges": 0.25}
CPU = torch.device("cpu")


def tiny_model() -> SiameseRegressor:
    torch.manual_seed(0)
    return SiameseRegressor(head_hidden=8).eval()


def descriptors(rng: np.random.Generator, n: int) -> DescriptorSet:
    return DescriptorSet({"color": rng.random((n, 16)), "texture": rng.normal(size=(n, 13)),
                          "edges": rng.random((n, 9))})


def bits(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 2**63, size=N_QUERIES).astype(np.uint64)


def near(rng: np.random.Generator, source: DescriptorSet, rows: np.ndarray) -> DescriptorSet:
    """Each query's descriptors: its source's, a little off (non-negative where histograms are)."""
    return DescriptorSet({name: np.abs(values[rows] + rng.normal(scale=1.0, size=values[rows].shape))
                          if name != "texture" else values[rows] + rng.normal(scale=1.0, size=values[rows].shape)
                          for name, values in source.vectors.items()})


@pytest.fixture(scope="module")
def setup() -> tuple[RetrievalTask, ScorerInputs, ScorerInputs, DescriptorWeighting]:
    """Queries that are noisy copies of their sources (so a proxy finds most of them), 29 candidates."""
    rng, generator = np.random.default_rng(0), torch.Generator().manual_seed(3)
    true_index = rng.choice(np.arange(0, N_CANDIDATES, 2), size=N_QUERIES)  # sources among the even columns
    candidate_embeddings = torch.randn(N_CANDIDATES, DEFAULT_EMBEDDING_DIM, generator=generator)
    candidate_greys = rng.integers(0, 256, size=(N_CANDIDATES, SSIM_SIZE, SSIM_SIZE), dtype=np.uint8)
    candidate_descriptors = descriptors(rng, N_CANDIDATES)
    candidate_hashes = {name: rng.integers(0, 2**63, size=N_CANDIDATES).astype(np.uint64) for name in HASH_NAMES}
    others = candidate_greys[rng.integers(0, N_CANDIDATES, size=N_QUERIES)]
    queries = ScorerInputs(
        candidate_embeddings[true_index] + 6.0 * torch.randn(N_QUERIES, DEFAULT_EMBEDDING_DIM, generator=generator),
        near(rng, candidate_descriptors, true_index),
        {name: values[true_index] ^ (bits(rng) & (bits(rng) | bits(rng))) for name, values in candidate_hashes.items()},
        (0.45 * candidate_greys[true_index] + 0.55 * others).astype(np.uint8),
    )
    candidates = ScorerInputs(candidate_embeddings, candidate_descriptors, candidate_hashes, candidate_greys)
    task = RetrievalTask([f"q{i}" for i in range(N_QUERIES)], [Path(f"q{i}") for i in range(N_QUERIES)],
                         [f"c{i}" for i in range(N_CANDIDATES)], [Path(f"c{i}") for i in range(N_CANDIDATES)],
                         true_index.astype(np.int64), np.arange(0, N_CANDIDATES, 2))
    stats = TextureStats.fit(candidate_descriptors["texture"])
    return task, queries, candidates, DescriptorWeighting(stats, WEIGHTS)


def full_scores(model, queries: ScorerInputs, candidates: ScorerInputs, weighting: DescriptorWeighting
                ) -> dict[str, np.ndarray]:
    """Every scorer's score of every (query, candidate): what evaluate ranked before it shortlisted."""
    head = np.concatenate([b for _, b in model_score_blocks(model, queries.embeddings, candidates.embeddings, CPU)])
    phash = hash_similarity(queries.hashes["phash"][:, None], candidates.hashes["phash"][None, :])
    return {
        "model": head,
        "descriptor": cross_scores(queries.descriptors, candidates.descriptors, weighting.stats, weighting.weights),
        "phash": phash,
        "dhash": hash_similarity(queries.hashes["dhash"][:, None], candidates.hashes["dhash"][None, :]),
        "ssim": np.array([[ssim_similarity(q, c) for c in candidates.greys] for q in queries.greys]),
        "fused": fused_scores(head, phash),
    }


def test_shortlisted_figures_equal_full_ranking_where_the_shortlist_holds_every_candidate(setup) -> None:
    task, queries, candidates, weighting = setup
    model = tiny_model()
    full = full_scores(model, queries, candidates, weighting)
    expected = retrieval_report(task, {name: (lambda s=scores: iter([(0, s)])) for name, scores in full.items()})
    for size in (N_CANDIDATES, DEFAULT_SHORTLIST):
        found = retrieval_report(task, score_blocks(model, queries, candidates, weighting, CPU, with_fused=True,
                                                    shortlisting=Shortlisting(size)))
        assert found == expected  # every figure, exactly; nothing outside the shortlist
        assert all(figures["collection"][OUTSIDE_SHORTLIST] == 0.0 for figures in found.values())
    # The fixture is not trivial: the scorers disagree, and none finds every source first.
    assert len({figures["collection"]["mrr"] for figures in expected.values()}) > 3
    assert min(figures["collection"]["recall_at_1"] for figures in expected.values()) < 1


def proxy_top(query_units: np.ndarray, candidate_units: np.ndarray, size: int) -> list[set[int]]:
    return [set(np.argsort(-row, kind="stable")[:size].tolist()) for row in query_units @ candidate_units.T]


def test_a_shorter_shortlist_reports_the_sources_outside_it_and_ranks_those_inside_exactly(setup) -> None:
    task, queries, candidates, weighting = setup
    model, size = tiny_model(), 3
    full = full_scores(model, queries, candidates, weighting)
    found = retrieval_report(task, score_blocks(model, queries, candidates, weighting, CPU, with_fused=True,
                                                shortlisting=Shortlisting(size)))
    proxies = {
        "model": (unit_rows(queries.embeddings.numpy()), unit_rows(candidates.embeddings.numpy())),
        "descriptor": descriptor_proxy(queries.descriptors, candidates.descriptors, WEIGHTS),
        "ssim": (ssim_proxy(queries.greys), ssim_proxy(candidates.greys)),
    }
    for name, (query_units, candidate_units) in proxies.items():
        tops = proxy_top(query_units, candidate_units, size)
        inside = np.array([source in top for source, top in zip(task.true_index, tops)])
        assert found[name]["collection"][OUTSIDE_SHORTLIST] == pytest.approx(np.mean(~inside)), name
        # Within its shortlist, a source ranks as among those candidates scored exactly; outside, last.
        ranks = [1 + sum(full[name][q, c] >= full[name][q, source] for c in top if c != source) if inside[q]
                 else N_CANDIDATES for q, (source, top) in enumerate(zip(task.true_index, tops))]
        assert found[name]["collection"]["mrr"] == pytest.approx(np.mean(1.0 / np.array(ranks))), name
    # Some sources fall outside, some not: the fraction says something here.
    assert any(0 < found[name]["collection"][OUTSIDE_SHORTLIST] < 1 for name in proxies)
    for name in ("phash", "dhash", "fused"):  # every candidate ranked: nothing outside
        assert found[name]["collection"][OUTSIDE_SHORTLIST] == 0.0


def test_the_costly_scorers_score_only_each_querys_shortlist(setup) -> None:
    task, queries, candidates, weighting = setup
    model, size, scored = tiny_model(), 4, []
    score_embeddings = model.score_embeddings

    def counted(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        scored.append(len(left))
        return score_embeddings(left, right)

    model.score_embeddings = counted
    blocks = score_blocks(model, queries, candidates, weighting, CPU, shortlisting=Shortlisting(size))
    for block in blocks["model"]():
        assert isinstance(block, Shortlisted) and block.columns.shape == (len(block.rows), size)
    assert sum(scored) == N_QUERIES * size  # the head never scores the whole (queries x candidates)


def test_descriptor_proxies_made_a_block_of_rows_at_a_time_are_those_of_one_pass(monkeypatch) -> None:
    rng = np.random.default_rng(3)
    queries, candidates = descriptors(rng, 7), descriptors(rng, 11)
    whole = descriptor_proxy(queries, candidates, WEIGHTS)
    monkeypatch.setattr(shortlists, "PROXY_ROWS", 3)  # blocks of 3, the last one short
    named = DescriptorSet(candidates.vectors, ids=pd.Index([f"c{i}" for i in range(11)], dtype=object))
    blocked = descriptor_proxy(queries, named.rows_of([f"c{i}" for i in range(11)]), WEIGHTS)  # read in place
    for made, expected in zip(blocked, whole):
        assert made.dtype == np.float32 and np.array_equal(made, expected)
        assert np.allclose(np.linalg.norm(made, axis=1), 1.0, atol=1e-6)


def test_ranks_from_a_shortlist_count_ties_against_the_source_and_put_an_unlisted_one_last() -> None:
    block = Shortlisted(np.arange(3), np.array([[0, 4, 7], [1, 2, 3], [5, 6, 8]]),
                        np.array([[0.5, 0.9, 0.5], [0.1, 0.2, 0.3], [np.nan, 0.4, 0.1]]))
    ranks, outside = shortlisted_ranks(block, np.array([0, 9, 5]), n_candidates=10)
    # Row 0: 0.9 above and 0.5 tied with its source; row 1: source not listed; row 2: its score is NaN (lowest).
    assert ranks.tolist() == [3, 10, 10] and outside.tolist() == [False, True, False]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict[str, Path]:
    return build_tiny_project(tmp_path_factory.mktemp("tiny"))


def evaluated(project: dict[str, Path], **kwargs):
    from artsim.evaluate import evaluate_on_test
    return evaluate_on_test(random_model(), mostly_test(resolved_pairs(project)), collection(project, mostly_test=True),
                            32, 4, descriptor_scorer=descriptor_scorer(project), **kwargs)


def test_evaluate_reports_the_shortlist_the_share_outside_it_and_the_sampled_queries(project) -> None:
    whole = evaluated(project, alterations=NO_TRANSFORMED_SET)
    short = evaluated(project, shortlist=2, max_sampled_queries=3, seed=5)
    report = short.report
    assert report["shortlist"] == 2 and report["n_sampled_queries"] == 3 < whole.report["n_queries"]
    outside = report[OUTSIDE_SHORTLIST]
    assert set(outside) == {"model", "descriptor", "phash", "dhash", "ssim", "fused"}
    assert outside["phash"] == outside["dhash"] == outside["fused"] == 0.0
    assert all(0.0 <= outside[name] <= 1.0 for name in ("model", "descriptor", "ssim"))
    assert whole.report[OUTSIDE_SHORTLIST] == dict.fromkeys(outside, 0.0)  # 100 >= every candidate
    table = short.tables["transformed.csv"]
    per_transform = table[table["transform"] != OVERALL]
    assert (per_transform["n_queries"] == 3).all() and table[OUTSIDE_SHORTLIST].notna().all()
    # The sample is the seed's: drawn again, the same figures.
    assert evaluated(project, shortlist=2, max_sampled_queries=3, seed=5).report == report


@pytest.mark.parametrize(("key", "value", "allowed"), [
    ("shortlist", 0, "greater than or equal to 1"),
    ("max_sampled_queries", 0, "greater than or equal to 1"),
    ("calibration_max_queries", 0, "greater than or equal to 1"),
    ("calibration_max_queries", "all", "integer"),
    ("shortlist", "all", "integer"),
])
def test_a_bad_evaluate_value_is_refused_naming_the_key_and_the_allowed_values(key, value, allowed) -> None:
    raw = committed_params()
    raw["evaluate"][key] = value
    with pytest.raises(ParamsError, match=rf"evaluate\.{key}: .*{allowed}"):
        parse_params(raw)


def test_the_evaluate_shortlist_defaults_to_the_searchs_and_the_sample_may_be_everything() -> None:
    assert DEFAULT_EVALUATE_SHORTLIST == DEFAULT_SHORTLIST
    raw = committed_params()
    raw["evaluate"]["max_sampled_queries"] = None
    assert parse_params(raw).evaluate.max_sampled_queries is None
