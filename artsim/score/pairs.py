"""The pair set: positives (original, its variant) and negatives (original, variant of another
painting), and the check that it holds something to learn from and to test on.

Negatives stay in their original's split when they can, so that no train pair shows a
val/test painting, and avoid variants whose style came from the original (partly derived
from it). Everything is deterministic given the seed and independent of row order.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from artsim.core.errors import NotEnoughData

log = logging.getLogger(__name__)


class NotEnoughPairs(NotEnoughData):
    """The pairs hold no train positive (nothing to learn) or no test pair (nothing to evaluate)."""


# Which stage needs the pairs of a split, and the fraction param that decides its size.
NEEDED = {
    "train": ("the siamese stage learns from train pairs", "lower ingest.val_fraction / ingest.test_fraction"),
    "test": ("evaluate measures on test pairs", "raise ingest.test_fraction"),
}


def pair_id(original_id: str, generated_id: str, occurrence: int = 0) -> str:
    """Stable id of a pair; `occurrence` disambiguates a negative drawn twice from a tiny pool."""
    key = f"{original_id}|{generated_id}|{occurrence}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def build_pairs(originals: pd.DataFrame, generated: pd.DataFrame, negatives: int, seed: int) -> pd.DataFrame:
    """Positive and negative pairs (columns original_id, generated_id, positive, strength, split, pair_id).

    originals: id, split. generated: id, original_id, strength [, style_source_id].
    Each original with k variants gets k positives and k*negatives negatives: variants of
    other paintings, drawn from the same split when possible (so that no pair of the train
    split shows a val/test image) and excluding variants whose style came from the original
    itself (those are partly derived from it).
    """
    split_of = dict(zip(originals["id"].astype(str), originals["split"].astype(str)))
    variants = _known_variants(generated, split_of)
    positives = _positive_pairs(variants)
    negative_rows = _negative_pairs(variants, negatives, np.random.default_rng(seed))
    pairs = pd.concat([positives, negative_rows], ignore_index=True) if len(negative_rows) else positives
    pairs["pair_id"] = _pair_ids(pairs)
    return pairs


def _known_variants(generated: pd.DataFrame, split_of: Mapping[str, str]) -> pd.DataFrame:
    variants = generated.assign(id=generated["id"].astype(str), original_id=generated["original_id"].astype(str))
    if "style_source_id" not in variants:
        variants = variants.assign(style_source_id="")
    unknown = ~variants["original_id"].isin(list(split_of))
    if unknown.any():
        log.warning("%d variants refer to an unknown original and are left out", int(unknown.sum()))
    variants = variants.loc[~unknown].assign(split=lambda d: d["original_id"].map(split_of))
    return variants.sort_values(["original_id", "id"]).reset_index(drop=True)


def _positive_pairs(variants: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "original_id": variants["original_id"],
        "generated_id": variants["id"],
        "positive": True,
        "strength": variants["strength"].astype(float),
        "split": variants["split"],
    })


def _negative_pairs(variants: pd.DataFrame, negatives: int, rng: np.random.Generator) -> pd.DataFrame:
    sampler = _NegativeSampler(variants, rng)
    chosen, original_ids, splits = [], [], []
    for original_id, own in sorted(sampler.own.items()):
        split = sampler.splits[own[0]]
        picks = sampler.draw(original_id, split, len(own) * negatives)
        chosen.append(picks)
        original_ids += [original_id] * len(picks)
        splits += [split] * len(picks)
    sampler.report()
    picked = variants.iloc[np.concatenate(chosen)] if chosen else variants.iloc[:0]
    return pd.DataFrame({
        "original_id": original_ids,
        "generated_id": picked["id"].to_list(),
        "positive": False,
        "strength": picked["strength"].astype(float).to_numpy(),
        "split": splits,
    })


class _NegativeSampler:
    """Draws negatives for one original at a time in O(draws), so that all of WikiArt stays fast.

    Candidates, in order of preference (the first non-empty one is used): same split and
    unrelated; same split; then, for val/test originals only, train and unrelated; train.
    "Unrelated" also excludes variants whose style was taken from the original (partly
    derived from it); a negative is never a variant of the original itself. A train pair
    never shows a val/test painting, and a val pair never a test one: an original without a
    candidate there gets no negative (counted) rather than one that leaks.
    """

    def __init__(self, variants: pd.DataFrame, rng: np.random.Generator) -> None:
        self.rng = rng
        self.splits = variants["split"].astype(str).to_numpy(dtype=object)
        self.by_split = {str(k): v for k, v in variants.groupby("split").indices.items()}
        self.everything = np.arange(len(variants))
        self.own = {str(k): v for k, v in variants.groupby("original_id").indices.items()}
        self.styled_after = {str(k): v for k, v in variants.groupby("style_source_id").indices.items()}
        self.fallbacks = 0
        self.missing = 0

    def draw(self, original_id: str, split: str, count: int) -> np.ndarray:
        own = self.own[original_id]
        related = np.union1d(own, self.styled_after.get(original_id, own))
        tiers = [(split, related), (split, own)]
        if split != "train":  # the model has seen train images: they may stand in as negatives
            tiers += [("train", related), ("train", own)]
        for tier, (pool_split, excluded) in enumerate(tiers):
            pool = self.by_split.get(pool_split, self.everything[:0])
            in_pool = excluded[self.splits[excluded] == pool_split]
            if len(pool) > len(in_pool):
                self.fallbacks += tier > 0
                return _draw_excluding(pool, in_pool, count, self.rng)
        self.missing += 1
        return np.empty(0, dtype=int)

    def report(self) -> None:
        if self.fallbacks:
            log.warning(
                "%d originals drew negatives from train or restyled after them (too few candidates)", self.fallbacks
            )
        if self.missing:
            log.warning("%d originals have no other painting's variant to pair as negative", self.missing)


def _draw_excluding(pool: np.ndarray, excluded: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` positions from `pool` minus `excluded` (all in pool), distinct unless the pool is too small."""
    eligible_size = len(pool) - len(excluded)
    if count <= eligible_size:
        # Over-draw by the number excluded, then drop those: uniform over eligible, without
        # materialising the eligible set (the pool can hold a whole split of WikiArt).
        picks = pool[rng.choice(len(pool), size=min(len(pool), count + len(excluded)), replace=False)]
        excluded_set = set(excluded.tolist())
        return np.array([p for p in picks.tolist() if p not in excluded_set][:count], dtype=int)
    eligible = pool[~np.isin(pool, excluded)]
    return eligible[_draw(len(eligible), count, rng)]


def _draw(pool_size: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` indices into the pool, each used as evenly as possible (repeats only if the pool is small)."""
    full_rounds, rest = divmod(count, pool_size)
    draws = [rng.permutation(pool_size) for _ in range(full_rounds)]
    draws.append(rng.choice(pool_size, size=rest, replace=False))
    return np.concatenate(draws).astype(int)


def _pair_ids(pairs: pd.DataFrame) -> list[str]:
    occurrence = pairs.groupby(["original_id", "generated_id"]).cumcount()
    return [pair_id(o, g, int(k)) for o, g, k in zip(pairs["original_id"], pairs["generated_id"], occurrence)]


def require_learnable_pairs(pairs: pd.DataFrame, originals: pd.DataFrame) -> None:
    """NotEnoughPairs, in one line, unless train has a positive pair and test has a pair.

    `originals` are the described originals (id, split): they tell a split without paintings
    (a split-fraction problem) from one whose paintings have no usable variant (a generation
    or decoding problem).
    """
    for split, (needed_by, fraction) in NEEDED.items():
        if pairs.loc[pairs["split"] == split, "positive"].any():
            continue
        paintings = int((originals["split"].astype(str) == split).sum())
        if paintings == 0:
            why = (
                f"the {split} split has no described painting; {needed_by}: "
                f"ingest more paintings (ingest.source) or {fraction}"
            )
        else:
            why = (f"none of the {paintings} described {split} paintings has a described variant; {needed_by}: "
                   "data/generated/failures.csv and data/descriptors/skipped.csv say why each is missing")
        raise NotEnoughPairs(f"score: no {split} pair: {why}")
