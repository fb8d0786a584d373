"""The held-out pairs a verdict rests on, and every scorer's score of them.

The held-out pairs of a split are each of its variants with its source (derived) and with every other original of
the collection (unrelated): 21 x 28 = 588 unrelated pairs on the sample, not one per variant. At scale a seeded
sample of `negatives_per_query` unrelated originals per variant keeps them linear in the collection. Every score
comes from what evaluate already read of each image (its embedding, its peer signature, its descriptors).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from artsim.core.hashes import hash_similarity
from artsim.describe.registry import descriptor
from artsim.describe.table import Descriptors
from artsim.evaluate.embedding import EmbeddedImages, score_embedding_pairs
from artsim.evaluate.peers import HASH_NAMES, PeerSignatures, ssim_similarity
from artsim.evaluate.scorer_inputs import DescriptorWeighting
from artsim.learn.models import SiameseRegressor
from artsim.score.similarity import DescriptorSet, combine

PAIR_COLUMNS = ["query_id", "query_path", "original_id", "original_path", "positive"]
# Pairs whose descriptors are stacked at once (a few MB of vectors).
DESCRIPTOR_CHUNK = 4096


def held_out_pairs(variants: pd.DataFrame, candidates: pd.DataFrame, per_query: int | None, seed: int
                   ) -> pd.DataFrame:
    """Each variant of `variants` (positive pairs: generated_id, generated_path, original_id) with its source and
    with every other original of `candidates` (id, path), or a seeded sample of `per_query` of them (None: all);
    PAIR_COLUMNS, variants in id order. A variant whose source is no candidate has no derived pair and is left out."""
    candidates = candidates.assign(id=candidates["id"].astype(str)).drop_duplicates("id").sort_values("id")
    column_of = {image_id: i for i, image_id in enumerate(candidates["id"])}
    variants = variants[variants["positive"].astype(bool)].drop_duplicates("generated_id").sort_values("generated_id")
    variants = variants[variants["original_id"].astype(str).isin(column_of)]
    rng, others = np.random.default_rng(seed), len(candidates) - 1
    query_rows, columns, positive = [], [], []
    for row, original_id in enumerate(variants["original_id"].astype(str)):
        source = column_of[original_id]
        # Positions among the other originals, shifted past the source: linear in `per_query`, not the collection.
        picked = (np.arange(others) if per_query is None or per_query >= others
                  else np.sort(rng.choice(others, size=per_query, replace=False)))
        unrelated = picked + (picked >= source)
        query_rows += [row] * (1 + len(unrelated))
        columns += [source, *unrelated.tolist()]
        positive += [True] + [False] * len(unrelated)
    queries, originals = variants.iloc[query_rows], candidates.iloc[columns]
    return pd.DataFrame({
        "query_id": queries["generated_id"].astype(str).to_numpy(), "query_path": list(queries["generated_path"]),
        "original_id": originals["id"].to_numpy(), "original_path": list(originals["path"]),
        "positive": np.array(positive, dtype=bool),
    }, columns=PAIR_COLUMNS)


def held_out_scores(model: SiameseRegressor, images: EmbeddedImages, signatures: PeerSignatures, pairs: pd.DataFrame,
                    device: torch.device, *, with_ssim: bool = False,
                    descriptors: Mapping[str, Descriptors] | None = None,
                    weighting: DescriptorWeighting | None = None) -> dict[str, np.ndarray]:
    """Whether each pair of `pairs` (PAIR_COLUMNS) is derived ("positive"), the model's score and the pHash /
    dHash similarities of each; SSIM where the grey thumbnails were kept, the descriptor score where the descriptors
    and their weighting are given."""
    left, right = list(pairs["query_path"]), list(pairs["original_path"])
    embeddings = images.embeddings
    scores = {"positive": pairs["positive"].to_numpy(dtype=bool),
              "model": score_embedding_pairs(model, embeddings[images.rows(left)], embeddings[images.rows(right)],
                                             device)}
    a, b = signatures.rows(left), signatures.rows(right)
    scores |= {name: hash_similarity(signatures.hashes(name)[a], signatures.hashes(name)[b]) for name in HASH_NAMES}
    if with_ssim:
        grey_a, grey_b = signatures.greys(left), signatures.greys(right)
        scores["ssim"] = np.array([ssim_similarity(x, y) for x, y in zip(grey_a, grey_b)], dtype=np.float64)
    if descriptors is not None and weighting is not None:
        scores["descriptor"] = descriptor_pair_scores(descriptors, list(pairs["query_id"]),
                                                      list(pairs["original_id"]), weighting)
    return scores


def descriptor_pair_scores(descriptors: Mapping[str, Descriptors], left: list[str], right: list[str],
                           weighting: DescriptorWeighting) -> np.ndarray:
    """The weighted descriptor score of each (left[i], right[i]) by id, a chunk of pairs at a time."""
    weighted = [name for name, weight in weighting.weights.items() if weight > 0]
    found = []
    for start in range(0, len(left), DESCRIPTOR_CHUNK):
        stop = start + DESCRIPTOR_CHUNK
        a = DescriptorSet.stack([descriptors[i] for i in left[start:stop]])
        b = DescriptorSet.stack([descriptors[i] for i in right[start:stop]])
        found.append(combine({name: descriptor(name).paired(a[name], b[name], weighting.stats) for name in weighted},
                             weighting.weights))
    return np.concatenate(found) if found else np.zeros(0)
