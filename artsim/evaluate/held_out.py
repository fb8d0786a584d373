"""The held-out pairs a verdict rests on, and every scorer's score of them.

The held-out pairs of a split are each of its variants with its source (derived) and with every other original of
the collection (unrelated): 21 x 28 = 588 unrelated pairs on the sample, not one per variant. Where the collection
holds more than `negatives_per_query` other originals, a seeded sample of that many per variant keeps the pairs linear
in the collection (a cap at least as large takes every one, as null does). They are scored a chunk at a time. Every
score comes from what evaluate already read of each image (its embedding, its peer signature, its descriptors).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from artsim.describe.registry import descriptor
from artsim.evaluate.embedding import PAIRS_PER_BLOCK, EmbeddedImages, score_embedding_pairs
from artsim.evaluate.peers import PeerSignatures, hash_similarities_of_pairs, ssim_of_pairs
from artsim.evaluate.scorer_inputs import DescriptorWeighting
from artsim.learn.models import SiameseRegressor
from artsim.score.similarity import DescriptorSet, combine

PAIR_COLUMNS = ["query_id", "query_path", "original_id", "original_path", "positive"]
# Held-out pairs scored at once, whatever the collection: their ids, descriptors and SSIMs. Whole calls of the head,
# so the head runs on the very batches of one call over all pairs: the scores are those of scoring every pair at once.
PAIRS_PER_CHUNK = PAIRS_PER_BLOCK


@dataclass(frozen=True)
class HeldOutPairs:
    """Held-out pairs as row numbers: pair i is variant `query_rows[i]` of `variants` (generated_id, generated_path,
    in id order) with original `columns[i]` of `candidates` (id, path, in id order): 17 bytes a pair, where a table
    of their ids and paths held four objects a pair and was built from lists of Python ints. The study's ~9 M pairs
    are ~150 MB; `frame` writes the ids and paths of one chunk at a time."""

    variants: pd.DataFrame
    candidates: pd.DataFrame
    query_rows: np.ndarray  # (pairs,) int64 rows of `variants`
    columns: np.ndarray     # (pairs,) int64 rows of `candidates`
    positive: np.ndarray    # (pairs,) bool: the pair is a variant with its source

    def __len__(self) -> int:
        return len(self.positive)

    def frame(self, start: int = 0, stop: int | None = None) -> pd.DataFrame:
        """Pairs start:stop as PAIR_COLUMNS (ids as str)."""
        queries = self.variants.iloc[self.query_rows[start:stop]]
        originals = self.candidates.iloc[self.columns[start:stop]]
        return pd.DataFrame({
            "query_id": queries["generated_id"].astype(str).to_numpy(), "query_path": list(queries["generated_path"]),
            "original_id": originals["id"].to_numpy(), "original_path": list(originals["path"]),
            "positive": self.positive[start:stop],
        }, columns=PAIR_COLUMNS)


def held_out_pairs(variants: pd.DataFrame, candidates: pd.DataFrame, per_query: int | None, seed: int
                   ) -> HeldOutPairs:
    """Each variant of `variants` (positive pairs: generated_id, generated_path, original_id) with its source and
    with every other original of `candidates` (id, path), or a seeded sample of `per_query` of them (None: all);
    variants in id order. A variant whose source is no candidate has no derived pair and is left out."""
    candidates = candidates.assign(id=candidates["id"].astype(str)).drop_duplicates("id").sort_values("id")
    column_of = {image_id: i for i, image_id in enumerate(candidates["id"])}
    variants = variants[variants["positive"].astype(bool)].drop_duplicates("generated_id").sort_values("generated_id")
    variants = variants[variants["original_id"].astype(str).isin(column_of)]
    rng, others = np.random.default_rng(seed), len(candidates) - 1
    columns = []
    for original_id in variants["original_id"].astype(str):
        source = column_of[original_id]
        # Positions among the other originals, shifted past the source: linear in `per_query`, not the collection.
        picked = (np.arange(others) if per_query is None or per_query >= others
                  else np.sort(rng.choice(others, size=per_query, replace=False)))
        columns.append(np.concatenate([[source], picked + (picked >= source)]))
    per_variant = np.array([len(part) for part in columns], dtype=np.int64)
    starts = np.cumsum(per_variant) - per_variant
    positive = np.zeros(int(per_variant.sum()), dtype=bool)
    positive[starts] = True
    return HeldOutPairs(variants.reset_index(drop=True), candidates.reset_index(drop=True),
                        np.repeat(np.arange(len(variants), dtype=np.int64), per_variant),
                        np.concatenate(columns or [np.zeros(0)]).astype(np.int64), positive)


def held_out_scores(model: SiameseRegressor, images: EmbeddedImages, signatures: PeerSignatures, pairs: HeldOutPairs,
                    device: torch.device, *, with_ssim: bool = False,
                    descriptors: DescriptorSet | None = None,
                    weighting: DescriptorWeighting | None = None) -> dict[str, np.ndarray]:
    """Whether each pair of `pairs` is derived ("positive"), the model's score and the pHash /
    dHash similarities of each; SSIM where the grey thumbnails were kept, the descriptor score where the descriptors
    and their weighting are given. PAIRS_PER_CHUNK pairs at a time: what is gathered of each pair (its embeddings,
    its descriptors) stays bounded however many pairs there are."""
    chunks = [
        _chunk_scores(model, images, signatures, pairs.frame(start, start + PAIRS_PER_CHUNK), device, with_ssim,
                      descriptors, weighting)
        for start in tqdm(range(0, len(pairs), PAIRS_PER_CHUNK) or [0], desc="held-out pairs", unit="chunk",
                          disable=None)
    ]
    return {name: np.concatenate([chunk[name] for chunk in chunks]) for name in chunks[0]}


def _chunk_scores(model: SiameseRegressor, images: EmbeddedImages, signatures: PeerSignatures, pairs: pd.DataFrame,
                  device: torch.device, with_ssim: bool, descriptors: DescriptorSet | None,
                  weighting: DescriptorWeighting | None) -> dict[str, np.ndarray]:
    left, right = list(pairs["query_path"]), list(pairs["original_path"])
    embeddings = images.embeddings
    scores = {"positive": pairs["positive"].to_numpy(dtype=bool),
              "model": score_embedding_pairs(model, embeddings, embeddings, device,
                                             rows=(images.rows(left), images.rows(right))),
              **hash_similarities_of_pairs(signatures, left, right)}
    if with_ssim:
        scores["ssim"] = ssim_of_pairs(signatures, left, right)
    if descriptors is not None and weighting is not None:
        scores["descriptor"] = descriptor_pair_scores(descriptors, list(pairs["query_id"]),
                                                      list(pairs["original_id"]), weighting)
    return scores


def descriptor_pair_scores(descriptors: DescriptorSet, left: list[str], right: list[str],
                           weighting: DescriptorWeighting) -> np.ndarray:
    """The weighted descriptor score of each (left[i], right[i]) by id (a chunk of pairs: their vectors are stacked)."""
    if not left:
        return np.zeros(0)
    weighted = [name for name, weight in weighting.weights.items() if weight > 0]
    a, b = descriptors.select(left), descriptors.select(right)
    return combine({name: descriptor(name).paired(a[name], b[name], weighting.stats) for name in weighted},
                   weighting.weights)
