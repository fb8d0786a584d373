"""What evaluate reads of each image, once: the model's embeddings and the peers' signatures of every test pair image,
every candidate and the calibration's val variants; the descriptors of the collection and the test pairs
(described_ids: a stage reads those rows only); and each scorer's reading of the retrieval's queries and candidates.

Grey thumbnails (16 KB an image) are kept only where SSIM is computed, and the retrieval's queries and candidates read
them where they are (peers.Thumbnails): memory grows with the collection by what one reading of each image holds.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from artsim.core.images import as_image_file
from artsim.evaluate.embedding import EmbeddedImages, embed_files
from artsim.evaluate.peers import HASH_NAMES, PeerSignatures, signatures_of
from artsim.evaluate.scorer_inputs import DescriptorWeighting, ScorerInputs
from artsim.learn.models import SiameseRegressor
from artsim.params import DescribeParams, ScoreWeights
from artsim.score.scorer import DescriptorScorer
from artsim.score.similarity import DescriptorSet, TextureStats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DescribedCollection:
    """The scored images' descriptors (described_ids) with the texture stats and weights: the descriptor score of any
    pair of them (the retrieval baseline). artsim.score.scorer.DescriptorScorer scores new images."""

    descriptors: DescriptorSet
    stats: TextureStats
    weights: ScoreWeights
    # How the pipeline described its images: evaluate describes the altered test variants with it
    # (None: the descriptor score does not take part in the transformed evaluation).
    describe: DescribeParams | None = None

    @property
    def weighting(self) -> DescriptorWeighting:
        return DescriptorWeighting(self.stats, self.weights.as_dict())


@dataclass(frozen=True)
class Readers:
    """What every scorer read of each image: the model's embeddings and the peers' signatures."""

    images: EmbeddedImages
    signatures: PeerSignatures

    def readable(self, paths: pd.Series | list[Path]) -> np.ndarray:
        return self.images.readable(paths) & self.signatures.readable(paths)


def describer(descriptor_scorer: DescribedCollection | None) -> Callable | None:
    """How the altered images are described (as the pipeline described its own), or None where not."""
    if descriptor_scorer is None or descriptor_scorer.describe is None:
        return None
    return DescriptorScorer(
        descriptor_scorer.describe, descriptor_scorer.weights, descriptor_scorer.stats
    ).describe_image


def read_images(
    model: SiameseRegressor, test: pd.DataFrame, collection: pd.DataFrame, image_size: int, batch_size: int,
    device: torch.device, loader_workers: int, ssim_retrieval_max_pairs: int, shortlist: int,
    max_sampled_queries: int | None, val_paths: list[Path],
) -> tuple[Readers, bool]:
    """Every test pair image, every candidate and every val variant (`val_paths`, for the calibration), embedded
    once and signed once; and whether SSIM ranks."""
    pair_paths = [*test["original_path"], *test["generated_path"]]
    scored = scored_paths(test, collection)
    paths = [*scored, *val_paths]
    images = embed_files(model, paths, image_size, batch_size, device, loader_workers)
    queries = test.loc[test["positive"].astype(bool), "generated_id"].nunique()
    queries = min(queries, max_sampled_queries or queries)  # SSIM ranks the sample, each query its shortlist
    ssim_ranks = queries * shortlist <= ssim_retrieval_max_pairs
    if not ssim_ranks:
        log.warning("SSIM retrieval skipped: %d queries x %d shortlisted candidates exceed %d combinations",
                    queries, shortlist, ssim_retrieval_max_pairs)
    # Grey thumbnails (16 KB an image) only where SSIM is computed: never of a val variant (the calibration's pairs
    # are scored by the model and the hashes), of the candidates only where SSIM ranks.
    signatures = signatures_of(paths, grey_for=scored if ssim_ranks else pair_paths)
    return Readers(images, signatures), ssim_ranks


def scored_ids(test_pairs: pd.DataFrame, collection: pd.DataFrame) -> pd.Series:
    """The ids (as str) of the images evaluate scores: both images of every test pair, then every original of the
    collection (an image may come more than once); scored_paths are their files, in the same order."""
    return pd.concat([test_pairs["original_id"], test_pairs["generated_id"], collection["id"]],
                     ignore_index=True).astype(str)


def scored_paths(test_pairs: pd.DataFrame, collection: pd.DataFrame) -> list[Path]:
    return [*test_pairs["original_path"], *test_pairs["generated_path"], *collection["path"]]


def unreadable_scored(readers: Readers, test_pairs: pd.DataFrame, collection: pd.DataFrame) -> int:
    """How many of the images scored (scored_paths, each once) did not decode. The calibration's val variants are a
    sample (calibration_variants): counting them would make the figure hang on it."""
    paths = list(dict.fromkeys(map(as_image_file, scored_paths(test_pairs, collection))))
    return int((~readers.readable(paths)).sum())


def described_ids(pairs: pd.DataFrame, collection: pd.DataFrame) -> set[str]:
    """The images whose descriptors evaluate_on_test reads (scored_ids of the test split's pairs). The train and val
    variants are never scored by the descriptor score here (at the study they are most of descriptors.parquet), so a
    stage reads these rows only (read_descriptors(path, ids))."""
    return set(scored_ids(pairs[pairs["split"] == "test"], collection))


def usable_ids(test_pairs: pd.DataFrame, collection: pd.DataFrame, readers: Readers,
               descriptor_scorer: DescribedCollection | None) -> set[str]:
    """Ids of the images every scorer read and, when the descriptor score ranks, that are described:
    every ranking then runs on the very same queries and candidates."""
    ids, paths = scored_ids(test_pairs, collection), scored_paths(test_pairs, collection)
    described = descriptor_scorer.descriptors.described(ids) if descriptor_scorer is not None else True
    return set(ids[readers.readable(paths) & described])


def scorer_inputs(readers: Readers, paths: list[Path], ids: list[str], descriptor_scorer: DescribedCollection | None,
                   with_greys: bool) -> ScorerInputs:
    """Every scorer's reading of these images (all read by every scorer: see usable_ids)."""
    images, signatures = readers.images, readers.signatures
    rows = signatures.rows(paths)
    described = descriptor_scorer is not None and len(ids) > 0
    return ScorerInputs(
        embeddings=images.embeddings[images.rows(paths)],
        descriptors=descriptor_scorer.descriptors.rows_of(ids) if described else None,  # in place: no second copy
        hashes={name: signatures.hashes(name)[rows] for name in HASH_NAMES},
        greys=signatures.greys(paths) if with_greys else None,
    )
