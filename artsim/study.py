"""The descriptor study: how well each candidate descriptor (and the weighted score) tells a
painting's own variants from other paintings' variants, and finds a variant's source.

Per candidate, and for the weighted score:
- pair AUC: ROC AUC of the similarity, positive pairs against negative pairs (all splits);
- recall@1 and MRR: a variant's similarity to every described original (all splits), the rank
  of its own source among them, ties counted against it; over a deterministic sample of at
  most `queries` variants (seeded), because every variant against every original is too many
  at WikiArt scale (240k x 80k);
- Spearman with strength: rank correlation of the similarity with the generation strength on
  the positive pairs (negative: the similarity falls as the variant strays further);
- redundancy: Spearman correlation between the candidates' similarities over all pairs.

Retrieval goes in blocks of whole queries against all originals (about `max_pairs` at a time).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from artsim.candidates import CANDIDATES
from artsim.config import CANDIDATE_NAMES, ScoreWeights
from artsim.descriptors import Descriptors
from artsim.scoring import DescriptorSet, combine, cross_similarities
from artsim.similarity_kernels import TextureStats

log = logging.getLogger(__name__)

SCORE = "score"
STUDY_COLUMNS = ["descriptor", "family", "weight", "auc", "recall_at_1", "mrr", "spearman_strength"]


@dataclass(frozen=True)
class Study:
    """descriptor_study.csv (`table`), redundancy.csv (`redundancy`) and the few figures of score.json."""

    table: pd.DataFrame
    redundancy: pd.DataFrame
    headline: dict[str, Any]


@dataclass(frozen=True)
class Retrieval:
    """Source retrieval figures by descriptor (and the score), and how many queries and candidates."""

    recall_at_1: dict[str, float | None]
    mrr: dict[str, float | None]
    queries: int
    candidates: int


def descriptor_study(scored: pd.DataFrame, descriptors: Mapping[str, Descriptors], originals: pd.DataFrame,
                     generated: pd.DataFrame, stats: TextureStats, weights: ScoreWeights, fitted: bool,
                     queries: int, seed: int) -> Study:
    """The study of the scored pairs and of retrieval among the described originals."""
    names = [n for n in CANDIDATE_NAMES if n in scored.columns]
    columns = [*names, SCORE]
    retrieval = source_retrieval(descriptors, originals, generated, stats, weights, queries, seed)
    aucs, spearmans = pair_aucs(scored, columns), strength_spearmans(scored, columns)
    weight_map = weights.as_dict()
    table = pd.DataFrame([
        {"descriptor": name, "family": CANDIDATES[name].family if name in CANDIDATES else "weighted",
         "weight": weight_map.get(name, 0.0) if name != SCORE else None, "auc": aucs[name],
         "recall_at_1": retrieval.recall_at_1.get(name), "mrr": retrieval.mrr.get(name),
         "spearman_strength": spearmans[name]}
        for name in columns], columns=STUDY_COLUMNS)
    return Study(table, redundancy(scored, columns), study_headline(weight_map, fitted, retrieval, spearmans))


def study_headline(weights: Mapping[str, float], fitted: bool, retrieval: Retrieval,
                   spearmans: Mapping[str, float | None]) -> dict[str, Any]:
    """Fixed keys whatever the data: every candidate's weight, and the weighted score's retrieval."""
    return {
        "weights": {name: float(weights.get(name, 0.0)) for name in CANDIDATE_NAMES},
        "weights_fitted": fitted,
        "retrieval": {"queries": retrieval.queries, "candidates": retrieval.candidates,
                      "score_recall_at_1": retrieval.recall_at_1.get(SCORE), "score_mrr": retrieval.mrr.get(SCORE)},
        "score_spearman_strength": spearmans.get(SCORE),
    }


def pair_aucs(scored: pd.DataFrame, columns: list[str]) -> dict[str, float | None]:
    labels = scored["positive"].to_numpy(dtype=bool)
    if len(np.unique(labels)) < 2:
        return dict.fromkeys(columns)
    return {name: float(roc_auc_score(labels, scored[name].to_numpy(dtype=np.float64))) for name in columns}


def strength_spearmans(scored: pd.DataFrame, columns: list[str]) -> dict[str, float | None]:
    positives = scored[scored["positive"].to_numpy(dtype=bool)]
    strength = positives["strength"].to_numpy(dtype=np.float64)
    return {name: _spearman(positives[name].to_numpy(dtype=np.float64), strength) for name in columns}


def _spearman(values: np.ndarray, strength: np.ndarray) -> float | None:
    # Undefined for fewer than 3 pairs or a constant side (e.g. a single strength).
    if len(values) < 3 or np.ptp(values) == 0 or np.ptp(strength) == 0:
        return None
    return float(spearmanr(values, strength).statistic)


def redundancy(scored: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Spearman correlation of every two descriptors' similarities over all pairs (the score included)."""
    matrix = scored[columns].astype(np.float64).corr(method="spearman")
    return matrix.rename_axis("descriptor").reset_index()


# --- source retrieval -------------------------------------------------------------------------

def query_sample(generated: pd.DataFrame, described: set[str], original_ids: set[str], queries: int, seed: int) -> pd.DataFrame:
    """At most `queries` described variants whose source is a described original: a seeded sample, in id order."""
    variants = pd.DataFrame({"id": generated["id"].astype(str), "original_id": generated["original_id"].astype(str)})
    usable = variants[variants["id"].isin(described) & variants["original_id"].isin(original_ids)]
    usable = usable.sort_values("id", kind="stable").reset_index(drop=True)
    if len(usable) > queries:
        chosen = np.sort(np.random.default_rng(seed).choice(len(usable), size=queries, replace=False))
        usable = usable.iloc[chosen].reset_index(drop=True)
    return usable


def source_retrieval(descriptors: Mapping[str, Descriptors], originals: pd.DataFrame, generated: pd.DataFrame,
                     stats: TextureStats, weights: ScoreWeights, queries: int, seed: int,
                     max_pairs: int = 1 << 21) -> Retrieval:
    """Recall@1 and MRR of finding each sampled variant's source among all described originals."""
    candidate_ids = sorted({str(i) for i in originals["id"]} & set(descriptors))
    sample = query_sample(generated, set(descriptors), set(candidate_ids), queries, seed)
    if sample.empty:
        log.warning("descriptor study: no described variant with a described source: no retrieval figures")
        return Retrieval({}, {}, 0, len(candidate_ids))
    candidates = DescriptorSet.stack([descriptors[i] for i in candidate_ids])
    query_set = DescriptorSet.stack([descriptors[i] for i in sample["id"]])
    position = {image_id: row for row, image_id in enumerate(candidate_ids)}
    targets = sample["original_id"].map(position).to_numpy()
    ranks = source_ranks(query_set, candidates, targets, stats, weights, max_pairs)
    return Retrieval(
        recall_at_1={name: float(np.mean(r == 1)) for name, r in ranks.items()},
        mrr={name: float(np.mean(1.0 / r)) for name, r in ranks.items()},
        queries=len(sample), candidates=len(candidate_ids))


def source_ranks(queries: DescriptorSet, candidates: DescriptorSet, targets: np.ndarray, stats: TextureStats,
                 weights: ScoreWeights, max_pairs: int = 1 << 21) -> dict[str, np.ndarray]:
    """Rank (1 = best) of candidate targets[q] for query q, by each descriptor and the score.

    Ties count against the source: its rank is the number of candidates scoring at least as high.
    """
    names = [n for n in queries.names if n in candidates.names]
    ranks = {name: np.empty(len(queries), dtype=np.int64) for name in (*names, SCORE)}
    rows = max(1, max_pairs // max(1, len(candidates)))
    for start in tqdm(range(0, len(queries), rows), desc="descriptor study", unit="block", disable=None):
        block = queries.rows(start, start + rows)
        sims = cross_similarities(block, candidates, stats, names)
        sims[SCORE] = combine(sims, weights)
        own = targets[start:start + len(block)]
        for name, matrix in sims.items():
            source = matrix[np.arange(len(block)), own]
            ranks[name][start:start + len(block)] = (matrix >= source[:, None]).sum(1)
    return ranks
