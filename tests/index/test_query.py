"""The search rankings (artsim.index.query.RANKINGS): each ranks an index as it says, an unknown one fails naming
the allowed ones, and evaluate ranks through the very same code: with a shortlist that holds every candidate
its figures are those of ranking every candidate (the embedded default: 29 originals, shortlist 100)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from artsim.core.fusion import RRF_K, fused_scores
from artsim.core.hashes import hash_similarity
from artsim.evaluate.embedding import model_score_blocks
from artsim.evaluate.peers import HASH_NAMES
from artsim.evaluate.scorer_inputs import ScorerInputs, score_blocks
from artsim.index import RANKING_NAMES
from artsim.index.query import RANKINGS, SCORER_WORDS, IndexSearch, ranking_named, unit_rows, within_shortlist
from artsim.index.search import Query, Searcher
from artsim.index.store import Entries, StoredIndex
from artsim.learn.models import SiameseRegressor

N, DIM = 12, 8


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


@pytest.mark.parametrize("ranking", RANKING_NAMES)
def test_each_ranking_ranks_the_index_as_it_says(index, ranking):
    searcher, rng = IndexSearch(index), np.random.default_rng(1)
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
    else:  # RRF of the head's ranks within the shortlist and pHash's over every usable original
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
    searcher, query = IndexSearch(index), np.random.default_rng(2).normal(size=DIM).astype(np.float32)
    query_phash = np.uint64(12345)
    everything = searcher.shortlists(query[None, :], N)[0]
    ranked = searcher.rank(ranking, query, query_phash, everything, head, top_k=N)
    raw = index.vectors * index.norms[:, None]
    full = RANKINGS[ranking].scores(np.where(index.usable, head(query[None, :], raw), -np.inf),
                                    searcher.phash_similarities(query_phash))
    assert {r.row: r.score for r in ranked} == pytest.approx({row: full[row] for row in np.flatnonzero(index.usable)})


def tiny_model() -> SiameseRegressor:
    torch.manual_seed(0)
    return SiameseRegressor(head_hidden=8).eval()


def inputs(embeddings: torch.Tensor, seed: int) -> ScorerInputs:
    hashes = {name: np.random.default_rng(seed).integers(0, 2**63, size=len(embeddings)).astype(np.uint64)
              for name in HASH_NAMES}
    return ScorerInputs(embeddings, None, hashes, None)


def test_evaluate_ranks_as_before_when_the_shortlist_holds_every_candidate_and_within_it_otherwise():
    model, generator = tiny_model(), torch.Generator().manual_seed(3)
    queries = inputs(torch.randn(5, model.embedding_dim, generator=generator), 1)
    candidates = inputs(torch.randn(29, model.embedding_dim, generator=generator), 2)
    full_model = np.concatenate([b for _, b in model_score_blocks(model, queries.embeddings, candidates.embeddings,
                                                                  torch.device("cpu"))])
    phash = hash_similarity(queries.hashes["phash"][:, None], candidates.hashes["phash"][None, :])
    blocks = score_blocks(model, queries, candidates, None, torch.device("cpu"), with_fused=True, shortlist=100)
    found = {name: np.concatenate([b for _, b in blocks[name]()]) for name in RANKING_NAMES}
    # Exactly the figures of ranking every candidate (what evaluate did before it ranked through the search).
    np.testing.assert_array_equal(found["model"], full_model)
    np.testing.assert_array_equal(found["phash"], phash)
    np.testing.assert_array_equal(found["fused"], fused_scores(full_model, phash))
    short = score_blocks(model, queries, candidates, None, torch.device("cpu"), with_fused=True, shortlist=4)
    kept = np.concatenate([b for _, b in short["model"]()])
    cosine = unit_rows(queries.embeddings.numpy()) @ unit_rows(candidates.embeddings.numpy()).T
    for row in range(5):
        top = set(np.argsort(-cosine[row])[:4].tolist())
        assert set(np.flatnonzero(np.isfinite(kept[row])).tolist()) == top
        np.testing.assert_array_equal(kept[row, sorted(top)], full_model[row, sorted(top)])
    np.testing.assert_array_equal(within_shortlist(full_model, queries.embeddings.numpy(),
                                                   candidates.embeddings.numpy(), 29), full_model)


def test_every_ranking_names_the_scorers_whose_thresholds_judge_its_hits() -> None:
    for ranking in RANKINGS.values():
        assert ranking.judged_by and set(ranking.judged_by) <= set(SCORER_WORDS), ranking.name
    # Each hit is judged by its scorers' own scores, never by the ranking's score (an RRF sum for fused).
    assert RANKINGS["model"].evidence(0.8, 0.6) == {"model": 0.8}
    assert RANKINGS["phash"].evidence(0.8, 0.6) == {"phash": 0.6}
    assert RANKINGS["fused"].evidence(0.8, 0.6) == {"model": 0.8, "phash": 0.6}
