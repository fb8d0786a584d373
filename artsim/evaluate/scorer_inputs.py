"""What every scorer reads of a set of images (the model's trunk embeddings, the descriptors, the
peers' hashes and grey thumbnails), and each scorer's (queries x candidates) score blocks from
two such sets: one implementation for the plain test variants and for their altered copies.

The scorers that are search rankings (model, phash, fused: artsim.index.query.RANKINGS) rank here as
`artsim search` ranks: the same ranking's scores, the head's within the same cosine shortlist, so the
figures (and the default ranking chosen from them) are those of the search users run. The head, the
descriptor score and SSIM score each query's shortlist only (artsim.evaluate.shortlists), the hashes every
candidate (a Hamming distance of packed bits): the cost grows as queries x shortlist, never as queries x
candidates for a costly scorer, and no block holds more than about DENSE_PAIRS scores.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from artsim.core.hashes import hash_similarity
from artsim.describe.table import DescriptorRows
from artsim.evaluate.embedding import PAIRS_PER_BLOCK, score_embedding_pairs
from artsim.evaluate.peers import HASH_NAMES, Thumbnails, hash_score_blocks, ssim_proxy, ssim_scores
from artsim.evaluate.shortlists import (
    ExactScores,
    descriptor_proxy,
    descriptor_scores,
    rows_per_block,
    shortlisted_blocks,
    units,
)
from artsim.evaluate.source_retrieval import ScoreBlocks, Shortlisted
from artsim.index import DEFAULT_SHORTLIST
from artsim.index.query import RANKINGS, Calibration
from artsim.learn.models import SiameseRegressor
from artsim.score.similarity import DescriptorSet, TextureStats

# Every scorer evaluate judges, in its tables' order; fused (a search ranking of RANKINGS) ranks only where asked.
SCORER_NAMES = ("model", "descriptor", *HASH_NAMES, "ssim", "fused")
# Scores of a block that holds every candidate (the hashes', fused's): bounds memory whatever the collection.
DENSE_PAIRS = 1 << 22


@dataclass(frozen=True)
class ScorerInputs:
    """Rows of images as each scorer reads them; descriptors / greys None where that scorer does not run."""

    embeddings: Tensor                 # (n, embedding_dim)
    descriptors: DescriptorSet | DescriptorRows | None  # DescriptorRows: read in place
    hashes: Mapping[str, np.ndarray]   # HASH_NAMES -> (n,) uint64
    greys: np.ndarray | Thumbnails | None  # (n, SSIM_SIZE, SSIM_SIZE) uint8, or rows of the array holding them

    def __len__(self) -> int:
        return len(self.hashes["phash"])


@dataclass(frozen=True)
class DescriptorWeighting:
    """The texture stats and weights of the descriptor score in force."""

    stats: TextureStats
    weights: Mapping[str, float]


@dataclass(frozen=True)
class Shortlisting:
    """How the costly scorers rank: each query's shortlist size, and the query rows SSIM ranks (None: all)."""

    size: int = DEFAULT_SHORTLIST
    ssim_rows: np.ndarray | None = None


def exact_scorers(model: SiameseRegressor, queries: ScorerInputs, candidates: ScorerInputs,
                  weighting: DescriptorWeighting | None, device: torch.device,
                  calibration: Calibration | None = None) -> dict[str, ExactScores | None]:
    """Each scorer's exact(rows, columns) of SCORER_NAMES, None where it does not score: what scores a
    shortlist, and a list of pairs (columns of width 1). fused's is the search ranking's calibrated probability of
    the head's score and the pHash similarity (None without `calibration`: its rank fusion scores no pair)."""
    def head(rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        pairs = (torch.as_tensor(np.repeat(rows, columns.shape[1]), dtype=torch.long),
                 torch.tensor(np.ravel(columns), dtype=torch.long))  # a copy: torch warns on a read-only array
        return score_embedding_pairs(model, queries.embeddings, candidates.embeddings, device,
                                     rows=pairs).reshape(np.shape(columns))

    def hashed(name: str) -> ExactScores:
        return lambda rows, columns: hash_similarity(queries.hashes[name][rows, None], candidates.hashes[name][columns])

    described = weighting is not None and queries.descriptors is not None and candidates.descriptors is not None
    greyed = queries.greys is not None and candidates.greys is not None
    return {
        "model": head,
        "descriptor": (descriptor_scores(queries.descriptors, candidates.descriptors, weighting.stats,
                                         weighting.weights) if described else None),
        **{name: hashed(name) for name in HASH_NAMES},
        "ssim": (lambda rows, columns: ssim_scores(queries.greys, candidates.greys, rows, columns)) if greyed else None,
        "fused": (lambda rows, columns: RANKINGS["fused"].scores(head(rows, columns), hashed("phash")(rows, columns),
                                                                 calibration)) if calibration is not None else None,
    }


def score_blocks(
    model: SiameseRegressor, queries: ScorerInputs, candidates: ScorerInputs, weighting: DescriptorWeighting | None,
    device: torch.device, with_fused: bool = False, shortlisting: Shortlisting = Shortlisting(),
    calibration: Calibration | None = None,
) -> dict[str, Callable[[], ScoreBlocks] | None]:
    """Each scorer's score blocks of the queries among the candidates, or None where it does not score; with_fused
    adds `fused`, ranked as a search ranks it with `calibration` (its calibrated probability of "derived")."""
    exact = exact_scorers(model, queries, candidates, weighting, device, calibration)
    size, every = shortlisting.size, np.arange(len(queries))
    per_block = rows_per_block(PAIRS_PER_BLOCK, min(size, len(candidates)))

    def hash_blocks(name: str) -> Callable[[], ScoreBlocks]:
        return lambda: hash_score_blocks(queries.hashes[name], candidates.hashes[name], DENSE_PAIRS)

    def ranked(name: str) -> Callable[[], ScoreBlocks]:
        return lambda: ranking_score_blocks(name, exact["model"], queries, candidates, size, calibration)

    def shortlisted(name: str, proxies: Callable[[], tuple[np.ndarray, np.ndarray]],
                    rows: np.ndarray) -> Callable[[], ScoreBlocks] | None:
        return None if exact[name] is None else (
            lambda: shortlisted_blocks(exact[name], *proxies(), size, rows, per_block, desc=f"{name} shortlists"))

    return {
        "model": ranked("model"),
        "descriptor": shortlisted("descriptor", lambda: descriptor_proxy(
            queries.descriptors, candidates.descriptors, weighting.weights), every),
        **{name: ranked(name) if name in RANKINGS else hash_blocks(name) for name in HASH_NAMES},
        "ssim": shortlisted("ssim", lambda: (ssim_proxy(queries.greys), ssim_proxy(candidates.greys)),
                            every if shortlisting.ssim_rows is None else shortlisting.ssim_rows),
    } | ({"fused": ranked("fused")} if with_fused else {})


def ranking_score_blocks(name: str, head: ExactScores, queries: ScorerInputs, candidates: ScorerInputs,
                         shortlist: int, calibration: Calibration | None = None) -> ScoreBlocks:
    """The scores of search ranking `name` (RANKINGS) of every query: the head's scores of each query's cosine
    shortlist (as IndexSearch picks it) and the pHash similarities, turned into the ranking's own; a ranking of
    the shortlist only in Shortlisted blocks, one of every candidate in dense blocks."""
    ranking = RANKINGS[name]
    query_phash, candidate_phash = queries.hashes["phash"], candidates.hashes["phash"]
    if not ranking.uses_head:
        for start, phash in hash_score_blocks(query_phash, candidate_phash, DENSE_PAIRS):
            yield start, ranking.scores(np.full(phash.shape, -np.inf), phash, calibration)
        return
    per_block = rows_per_block(PAIRS_PER_BLOCK, min(shortlist, len(candidates)))
    if not ranking.over_shortlist:
        per_block = min(per_block, rows_per_block(DENSE_PAIRS, len(candidates)))
    query_units, candidate_units = (units(inputs.embeddings.detach().cpu().numpy()) for inputs in (queries, candidates))
    for block in shortlisted_blocks(head, query_units, candidate_units, shortlist, np.arange(len(queries)),
                                    per_block, desc=f"{name} shortlists"):
        if ranking.over_shortlist:
            phash = hash_similarity(query_phash[block.rows, None], candidate_phash[block.columns])
            yield Shortlisted(block.rows, block.columns, ranking.scores(block.scores, phash, calibration))
            continue
        dense = np.full((len(block.rows), len(candidates)), -np.inf)
        np.put_along_axis(dense, np.asarray(block.columns), block.scores, axis=1)
        yield int(block.rows[0]), ranking.scores(dense, hash_similarity(query_phash[block.rows, None],
                                                                        candidate_phash[None, :]), calibration)
