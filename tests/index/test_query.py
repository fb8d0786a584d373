"""The search rankings (artsim.index.query.RANKINGS): each ranks an index as it says, an unknown one fails naming
the allowed ones (evaluate ranks through the very same code: tests/evaluate/test_shortlists.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from artsim.core.fusion import RRF_K
from artsim.core.hashes import hash_similarity
from artsim.index import RANKING_NAMES
from artsim.index.query import RANKINGS, SCORER_WORDS, Calibration, IndexSearch, ranking_named, unit_rows
from artsim.index.search import Query, Searcher
from artsim.index.store import Entries, StoredIndex

N, DIM = 12, 8
CALIBRATION = Calibration(("model", "phash"), (3.0, 5.0), -4.0)


def head(queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """A stand-in for the model's head that is not the cosine: so the shortlist and the head's order differ."""
    return candidates @ (queries[0] * np.arange(1, DIM + 1)) / 10.0


@pytest.fixture()
def index() -> StoredIndex:
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(N, DIM)).astype(np.float32)
    phash = [f"{int(h):016x}" for h in rng.integers(0, 2**63, size=N)]
    problems = ["" if row != 3 else "not_an_image" for row in range(N)]
    entries = Entries([f"id{r}" for r in range(N)], [f"{r}.png" for r in range(N)], [""] * N, [0] * N, [0] * N, phash,
                      [""] * N, [f"t{r}" for r in range(N)], problems)
    norms = np.linalg.norm(embeddings, axis=1).astype(np.float32)
    return StoredIndex("m", "/", entries, (embeddings / norms[:, None]).astype(np.float32), norms)


def test_the_registry_holds_the_names_the_command_offers():
    assert tuple(RANKINGS) == RANKING_NAMES


@pytest.mark.parametrize("ranking", [*RANKING_NAMES, "uncalibrated fused"])
def test_each_ranking_ranks_the_index_as_it_says(index, ranking):
    uncalibrated = ranking == "uncalibrated fused"
    ranking = ranking.removeprefix("uncalibrated ")
    searcher, rng = IndexSearch(index, None if uncalibrated else CALIBRATION), np.random.default_rng(1)
    query, query_phash = rng.normal(size=DIM).astype(np.float32), np.uint64(int(index.entries.phash[5], 16) ^ 0b1011)
    shortlisted = searcher.shortlists(query[None, :], 6)[0]
    ranked = searcher.rank(ranking, query, query_phash, shortlisted, head, top_k=N)
    usable = [r for r in range(N) if r != 3]
    raw = index.vectors * index.norms[:, None]
    head_of = {int(r): float(head(query[None, :], raw[[r]])[0]) for r in shortlisted[0]}
    phash_of = {r: float(hash_similarity(query_phash, np.uint64(int(index.entries.phash[r], 16)))) for r in usable}
    if ranking == "model":  # the cosine shortlist, in the head's order
        expected = head_of
    elif ranking == "phash":  # every usable original, by Hamming similarity
        expected = phash_of
    elif not uncalibrated:  # p = logistic(-4 + 3 head + 5 pHash) of every usable original, head 0 outside the shortlist
        expected = {r: 1 / (1 + np.exp(4 - 3 * head_of.get(r, 0.0) - 5 * phash_of[r])) for r in usable}
    else:  # no calibration shipped: RRF of the head's ranks within the shortlist and pHash's over every usable one
        model_rank = {r: 1 + sum(o > s for o in head_of.values()) for r, s in head_of.items()}
        phash_rank = {r: 1 + sum(o > s for o in phash_of.values()) for r, s in phash_of.items()}
        expected = {r: 1 / (RRF_K + phash_rank[r]) + (1 / (RRF_K + model_rank[r]) if r in model_rank else 0.0)
                    for r in usable}
    assert {r.row: r.score for r in ranked} == pytest.approx(expected)
    assert [r.score for r in ranked] == sorted((r.score for r in ranked), reverse=True) and 3 not in {
        r.row for r in ranked
    }
    cosine = unit_rows(raw) @ unit_rows(query)
    assert [r.cosine for r in ranked] == pytest.approx([float(cosine[r.row]) for r in ranked], abs=1e-5)


def test_an_unknown_ranking_fails_naming_the_allowed_ones_before_any_query_is_embedded(index):
    with pytest.raises(ValueError, match="'bogus': one of model, phash, fused"):
        ranking_named("bogus")
    embedded = []
    searcher = Searcher(index, Path("/"), embedded.append, head, lambda score: None)
    with pytest.raises(ValueError, match="one of model, phash, fused"):
        list(searcher.search([Query("q", None, "unused")], 3, "bogus"))
    assert embedded == []


@pytest.mark.parametrize("ranking", RANKING_NAMES)
def test_a_shortlist_holding_every_original_ranks_as_ranking_every_original(index, ranking):
    searcher, query = IndexSearch(index, CALIBRATION), np.random.default_rng(2).normal(size=DIM).astype(np.float32)
    query_phash = np.uint64(12345)
    everything = searcher.shortlists(query[None, :], N)[0]
    ranked = searcher.rank(ranking, query, query_phash, everything, head, top_k=N)
    raw = index.vectors * index.norms[:, None]
    full = RANKINGS[ranking].scores(np.where(index.usable, head(query[None, :], raw), -np.inf),
                                    searcher.phash_similarities(query_phash), CALIBRATION)
    assert {r.row: r.score for r in ranked} == pytest.approx({row: full[row] for row in np.flatnonzero(index.usable)})


def test_every_ranking_names_the_scorers_whose_thresholds_judge_its_hits() -> None:
    for ranking in RANKINGS.values():
        assert ranking.judged_by and set(ranking.judged_by) <= set(SCORER_WORDS), ranking.name
    # Each hit is judged by its own scorer's score: fused's by its calibrated probability, by its own thresholds.
    assert RANKINGS["model"].evidence(0.8, 0.6, 0.8) == {"model": 0.8}
    assert RANKINGS["phash"].evidence(0.8, 0.6, 0.6) == {"phash": 0.6}
    assert RANKINGS["fused"].evidence(0.8, 0.6, 0.93) == {"fused": 0.93}


def test_a_calibration_is_refused_unless_it_combines_what_a_search_has() -> None:
    for features, coefficients in ((("model", "dhash"), (1.0, 1.0)), (("model",), (1.0, 2.0)), ((), ())):
        with pytest.raises(ValueError, match="one coefficient per feature of model, phash"):
            Calibration(features, coefficients, 0.0)
    with pytest.raises(ValueError, match="finite"):
        Calibration(("model",), (float("nan"),), 0.0)
