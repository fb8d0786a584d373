"""The descriptor study: how well each descriptor (and the weighted score) tells a
painting's own variants from other paintings' variants, and finds a variant's source.

Every figure is measured on HELD-OUT data: the val and test pairs, and variants of val/test
paintings as retrieval queries. `score.weights: fit` learns the weights on the train pairs, so
figures that included them would be in-sample for the fitted score (and flatter it); measured
on held-out data, the fitted row, the default one and every descriptor compare on equal terms.

Per descriptor, and for the weighted score (the metrics themselves: artsim.core.metrics):
- pair AUC: ROC AUC of the similarity, positive pairs against negative pairs (held-out pairs);
- recall@1 and MRR: a held-out variant's similarity to the described originals (of every
  split: the candidates a search faces), the rank of its own source among them, ties counted
  against it; over a deterministic sample of at most `queries` variants (seeded), because every
  variant against every original is too many at WikiArt scale (240k x 80k), and re-ranked exactly
  on each query's `shortlist` nearest originals by a vector proxy (artsim.score.shortlist), so that
  the exact kernels run queries x shortlist times however many originals there are: the full
  ranking when the shortlist holds them all; the share of queries whose source the proxy missed
  is reported;
- Spearman with strength: rank correlation of the similarity with the generation strength on
  the held-out positive pairs (negative: the similarity falls as the variant strays further);
- redundancy: Spearman correlation between the descriptors' similarities over the held-out pairs.

The proxy goes in blocks of whole queries against all originals (about `max_pairs` at a time).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from artsim.core.metrics import pair_aucs, retrieval_metrics, strength_spearmans
from artsim.describe.kernels import TextureStats
from artsim.describe.registry import DESCRIPTORS
from artsim.describe.table import DescriptorSet
from artsim.params import DESCRIPTOR_NAMES, ScoreWeights
from artsim.score.shortlist import SCORE, shortlist_source_ranks

log = logging.getLogger(__name__)

STUDY_COLUMNS = ["descriptor", "family", "weight", "auc", "recall_at_1", "mrr", "spearman_strength"]
TRAIN = "train"  # the split `score.weights: fit` learns from: the study leaves it out


@dataclass(frozen=True)
class Study:
    """descriptor_study.csv (`table`), redundancy.csv (`redundancy`) and the few figures of score.json."""

    table: pd.DataFrame
    redundancy: pd.DataFrame
    headline: dict[str, Any]


@dataclass(frozen=True)
class Retrieval:
    """Source retrieval figures by descriptor (and the score), how many queries and candidates, the
    shortlist re-ranked exactly and the share of queries whose source the shortlist's proxy missed."""

    recall_at_1: dict[str, float | None]
    mrr: dict[str, float | None]
    queries: int
    candidates: int
    shortlist: int
    outside: dict[str, float]


def heldout_pairs(scored: pd.DataFrame) -> pd.DataFrame:
    """The pairs outside the train split (negatives stay in their original's split, so no train painting)."""
    return scored[scored["split"].astype(str) != TRAIN]


def heldout_originals(originals: pd.DataFrame) -> set[str]:
    """Ids of the originals outside the train split: the sources whose variants the study queries."""
    return set(originals.loc[originals["split"].astype(str) != TRAIN, "id"].astype(str))


def descriptor_study(scored: pd.DataFrame, descriptors: DescriptorSet, originals: pd.DataFrame,
                     generated: pd.DataFrame, stats: TextureStats, weights: ScoreWeights, fitted: bool,
                     queries: int, seed: int, shortlist: int) -> Study:
    """The study of the held-out pairs and of held-out variants' retrieval among all described originals."""
    names = [n for n in DESCRIPTOR_NAMES if n in scored.columns]
    columns = [*names, SCORE]
    heldout = heldout_pairs(scored)
    retrieval = descriptor_source_retrieval(descriptors, originals, generated, stats, weights, queries, seed,
                                            shortlist, sources=heldout_originals(originals))
    aucs, spearmans = heldout_aucs(heldout, columns), heldout_spearmans(heldout, columns)
    weight_map = weights.as_dict()
    table = pd.DataFrame([
        {"descriptor": name, "family": DESCRIPTORS[name].family if name in DESCRIPTORS else "weighted",
         "weight": weight_map.get(name, 0.0) if name != SCORE else None, "auc": aucs[name],
         "recall_at_1": retrieval.recall_at_1.get(name), "mrr": retrieval.mrr.get(name),
         "spearman_strength": spearmans[name]}
        for name in columns], columns=STUDY_COLUMNS)
    headline = study_headline(weight_map, fitted, len(heldout), aucs, retrieval, spearmans)
    return Study(table, redundancy(heldout, columns), headline)


def study_headline(weights: Mapping[str, float], fitted: bool, pairs: int, aucs: Mapping[str, float | None],
                   retrieval: Retrieval, spearmans: Mapping[str, float | None]) -> dict[str, Any]:
    """Fixed keys whatever the data: every descriptor's weight, and the weighted score's held-out figures."""
    return {
        "weights": {name: float(weights.get(name, 0.0)) for name in DESCRIPTOR_NAMES},
        "weights_fitted": fitted,
        "heldout_pairs": pairs,
        "score_auc": aucs.get(SCORE),
        "retrieval": {"queries": retrieval.queries, "candidates": retrieval.candidates,
                      "score_recall_at_1": retrieval.recall_at_1.get(SCORE), "score_mrr": retrieval.mrr.get(SCORE),
                      "shortlist": retrieval.shortlist,
                      "score_outside_shortlist": retrieval.outside.get(SCORE)},
        "score_spearman_strength": spearmans.get(SCORE),
    }


def _columns(scored: pd.DataFrame, columns: list[str]) -> dict[str, np.ndarray]:
    return {name: scored[name].to_numpy(dtype=np.float64) for name in columns}


def heldout_aucs(scored: pd.DataFrame, columns: list[str]) -> dict[str, float | None]:
    return pair_aucs(scored["positive"].to_numpy(dtype=bool), _columns(scored, columns))


def heldout_spearmans(scored: pd.DataFrame, columns: list[str]) -> dict[str, float | None]:
    return strength_spearmans(scored["positive"].to_numpy(dtype=bool), scored["strength"].to_numpy(dtype=np.float64),
                              _columns(scored, columns))


def redundancy(scored: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Spearman correlation of every two descriptors' similarities over `scored` (the score included)."""
    matrix = scored[columns].astype(np.float64).corr(method="spearman")
    return matrix.rename_axis("descriptor").reset_index()


# --- source retrieval -------------------------------------------------------------------------

def query_sample(
    generated: pd.DataFrame, descriptors: DescriptorSet, original_ids: set[str], queries: int, seed: int
) -> pd.DataFrame:
    """At most `queries` described variants whose source is in `original_ids`: a seeded sample, in id order."""
    variants = pd.DataFrame({"id": generated["id"].astype(str), "original_id": generated["original_id"].astype(str)})
    usable = variants[descriptors.described(variants["id"]) & variants["original_id"].isin(original_ids)]
    usable = usable.sort_values("id", kind="stable").reset_index(drop=True)
    if len(usable) > queries:
        chosen = np.sort(np.random.default_rng(seed).choice(len(usable), size=queries, replace=False))
        usable = usable.iloc[chosen].reset_index(drop=True)
    return usable


def descriptor_source_retrieval(descriptors: DescriptorSet, originals: pd.DataFrame,
                                generated: pd.DataFrame, stats: TextureStats, weights: ScoreWeights, queries: int,
                                seed: int, shortlist: int, max_pairs: int = 1 << 21,
                                sources: set[str] | None = None) -> Retrieval:
    """Recall@1 and MRR of finding each sampled variant's source among all described originals,
    re-ranked exactly on each query's `shortlist` nearest by the proxy (artsim.score.shortlist).

    sources: the originals whose variants may be queries (default: every one); the candidates
    are every described original whatever its split.
    """
    original_ids = originals["id"].astype(str)
    candidate_ids = sorted(set(original_ids[descriptors.described(original_ids)]))
    query_sources = set(candidate_ids) if sources is None else set(candidate_ids) & sources
    sample = query_sample(generated, descriptors, query_sources, queries, seed)
    if sample.empty:
        log.warning("descriptor study: no described variant of a described source to query: no retrieval figures")
        return Retrieval({}, {}, 0, len(candidate_ids), shortlist, {})
    # the candidates are row numbers of `descriptors`: their vectors are not copied (a copy per original)
    candidate_rows, query_set = descriptors.positions(candidate_ids), descriptors.select(sample["id"])
    position = {image_id: row for row, image_id in enumerate(candidate_ids)}
    targets = sample["original_id"].map(position).to_numpy()
    ranked = shortlist_source_ranks(query_set, descriptors, targets, stats, weights, shortlist, max_pairs,
                                    rows=candidate_rows)
    metrics = {name: retrieval_metrics(r, len(candidate_ids), recall_at=(1,)) for name, r in ranked.ranks.items()}
    return Retrieval(
        recall_at_1={name: m["recall_at_1"] for name, m in metrics.items()},
        mrr={name: m["mrr"] for name, m in metrics.items()},
        queries=len(sample), candidates=len(candidate_ids), shortlist=shortlist, outside=ranked.outside)
