"""Apply the trained model: `artsim.load(workspace_or_model_dir)` -> Scorer.

    scorer = artsim.load(".")                  # a workspace after `dvc repro`, or models/siamese
    result = scorer.score("variant.jpg", "painting.jpg")
    result.model_score, result.descriptor_score, result.similarities["edges"]
    vectors = scorer.embed(["a.jpg", pil_image])   # (n, embedding_dim) embeddings
    scorer.verdict(result.model_score).text        # "derived: likely (score = 0.81 >= 0.74; ...)"

Images are paths or PIL images, decoded as the pipeline decodes its own (EXIF orientation,
any mode to RGB, size limits before decoding). The descriptor score uses the describe
params, weights and texture statistics the pipeline saved beside the model, so a pair
scores here as it does in `data/pairs/pairs.parquet`. The verdict thresholds are those the
evaluate stage measured for these very weights (models/verdict.json, beside the model folder);
without them every verdict is "no verdict", never an error.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from artsim.core.errors import UserError
from artsim.core.images import ImageRejected, load_rgb
from artsim.core.shards import ShardMember
from artsim.describe.table import Descriptors
from artsim.evaluate.verdict import (
    VALUE_NAMES,
    VERDICT_FILE,
    ShippedThresholds,
    Thresholds,
    Verdict,
    read_shipped,
    verdict_for,
)
from artsim.index.embedder import TrunkEmbedder
from artsim.index.query import SCORER_WORDS, Calibration
from artsim.index.search import Judgement
from artsim.learn import model_folder

# WEIGHTS_FILE: app/service.py still takes it from here
from artsim.learn.model_folder import WEIGHTS_FILE, ModelNotFound  # noqa: F401
from artsim.learn.models import SiameseRegressor, pair_resize, to_normalised_tensor
from artsim.score.scorer import FILE_NAME as DESCRIPTOR_SCORE_FILE
from artsim.score.scorer import DescriptorScoreFileError, DescriptorScorer

# A workspace's own images (search candidates, manifests) are shard members: taken too.
ImageInput = Union[str, os.PathLike, Image.Image, ShardMember]


class UnusableImage(UserError):
    pass


@dataclass(frozen=True)
class Comparison:
    """Both scores of one pair, and what the descriptor score is made of."""

    model_score: float
    descriptor_score: float
    similarities: dict[str, float]  # the score's parts as configured (the weights in force), each in [0, 1]
    weights: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {"model_score": self.model_score, "descriptor_score": self.descriptor_score,
                "similarities": dict(self.similarities), "weights": dict(self.weights)}


@dataclass
class LoadedImage:
    """One input decoded once, named for messages."""

    name: str
    image: Image.Image
    descriptors: Descriptors | None = field(default=None, repr=False)  # filled by Scorer.descriptors on first use


def open_image(source: "ImageInput | LoadedImage") -> LoadedImage:
    """Decode a path (defensively, as the pipeline does) or take a PIL image; UnusableImage names it and why."""
    if isinstance(source, LoadedImage):
        return source
    if isinstance(source, Image.Image):
        return LoadedImage("<PIL image>", _as_rgb(source))
    if isinstance(source, ShardMember):
        return _decoded(source)
    if not isinstance(source, (str, os.PathLike)):
        raise UnusableImage(f"not an image path nor a PIL image: {type(source).__name__}")
    path = Path(source)
    if path.is_dir():
        raise UnusableImage(f"{path}: is a folder, not an image")
    return _decoded(path)


def _decoded(source: Path | ShardMember) -> LoadedImage:
    try:
        return LoadedImage(str(source), load_rgb(source))
    except ImageRejected as exc:
        raise UnusableImage(f"{source}: unusable image ({exc})") from None
    except OSError as exc:  # unreadable file (permissions, a device, ...)
        raise UnusableImage(f"{source}: cannot be read ({exc.strerror or exc})") from None


def _as_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # Transparency on white, as load_rgb flattens files.
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    return image.convert("RGB")


class Scorer:
    """The trained siamese model and the saved descriptor score, ready to apply."""

    def __init__(self, model: SiameseRegressor, card: dict[str, Any], descriptor: DescriptorScorer, model_dir: Path,
                 device: torch.device | None = None) -> None:
        self.model = model
        self.card = card
        self.descriptor = descriptor
        self.model_dir = model_dir
        self.device = device or torch.device("cpu")
        self.image_size = int(card["image_size"])
        # pair_transform split in two: `compare --pairs` resizes in worker processes, the trunk's process normalises
        self.resize = pair_resize(self.image_size)
        self._normalise = v2.Compose(to_normalised_tensor())
        self.model.to(self.device).eval()

    # --- the two scores -------------------------------------------------------------------

    def score(self, a: ImageInput | LoadedImage, b: ImageInput | LoadedImage) -> Comparison:
        """Model score and descriptor score of (a, b), with the per-descriptor similarities."""
        first, second = open_image(a), open_image(b)
        embeddings = self.embed_loaded([first, second])
        model_score = float(self.head_scores(embeddings[:1], embeddings[1:])[0])
        return self._comparison(model_score, first, second)

    def _comparison(self, model_score: float, first: LoadedImage, second: LoadedImage) -> Comparison:
        sims = self.descriptor.similarities(self.descriptors(first), self.descriptors(second))
        return Comparison(model_score, self.descriptor.score(sims), sims, self.descriptor.weights.as_dict())

    def descriptors(self, image: ImageInput | LoadedImage) -> Descriptors:
        loaded = image if isinstance(image, LoadedImage) else open_image(image)
        if loaded.descriptors is None:
            loaded.descriptors = self.descriptor.describe_image(loaded.image)
        return loaded.descriptors

    # --- embeddings -----------------------------------------------------------------------

    def embed(self, images: Sequence[ImageInput] | ImageInput) -> np.ndarray:
        """Embeddings (SiameseRegressor.embed), (n, embedding_dim) float32, in input order; one image gives one row."""
        if isinstance(images, (str, os.PathLike, Image.Image, ShardMember)):
            images = [images]
        return self.embed_loaded([open_image(image) for image in images]).numpy()

    @torch.no_grad()
    def embed_loaded(self, images: Sequence[LoadedImage]) -> torch.Tensor:
        """Embeddings of images already decoded (LoadedImage), as a (n, embedding_dim) float32 tensor."""
        return self.embed_resized([self.resize(loaded.image) for loaded in images])

    @torch.no_grad()
    def embed_resized(self, resized: Sequence[torch.Tensor]) -> torch.Tensor:
        """Embeddings of images already through `self.resize` (uint8 tensors), as a (n, embedding_dim) tensor."""
        batch = torch.stack([self._normalise(image) for image in resized]).to(self.device)
        return self.model.embed(batch).float().cpu()

    @torch.no_grad()
    def head_scores(self, queries: torch.Tensor | np.ndarray, candidates: torch.Tensor | np.ndarray) -> np.ndarray:
        """The model's score of each (query, candidate) row pair; one query row scores against every candidate."""
        left, right = torch.as_tensor(queries, dtype=torch.float32), torch.as_tensor(candidates, dtype=torch.float32)
        if len(left) == 1 and len(right) != 1:
            left = left.expand(len(right), -1)
        scores = self.model.score_embeddings(left.to(self.device), right.to(self.device))
        return scores.float().cpu().numpy().astype(np.float64)

    # --- the verdict --------------------------------------------------------------------------

    @cached_property
    def verdict_file(self) -> Path:
        """Where the thresholds are read: in the model folder (a copy made to carry them), else beside it
        (models/verdict.json)."""
        inside = self.model_dir / VERDICT_FILE
        return inside if inside.exists() else self.model_dir.parent / VERDICT_FILE

    @cached_property
    def _shipped(self) -> tuple[ShippedThresholds | None, str]:
        return read_shipped(self.verdict_file, model_folder.weights_hash(self.model_dir))

    @property
    def thresholds(self) -> Thresholds | None:
        """The model's thresholds at 90% / 99% precision on the held-out pairs; None if none were shipped."""
        return self.thresholds_of("model")

    def thresholds_of(self, scorer: str) -> Thresholds | None:
        """The shipped thresholds of one of evaluate's scorers (model, phash, ...); None if none were shipped."""
        shipped = self._shipped[0]
        return shipped.by_scorer().get(scorer) if shipped else None

    @property
    def calibration(self) -> Calibration | None:
        """fused's calibrated probability of "derived", fitted by evaluate on validation pairs; None if none shipped."""
        shipped = self._shipped[0]
        return shipped.calibration if shipped else None

    @property
    def search_default(self) -> str | None:
        """The ranking evaluate found best for these weights (MRR over held-out queries, plain and transformed); None
        if none was shipped."""
        shipped = self._shipped[0]
        return shipped.default_by if shipped else None

    def verdict(self, score: float, scorer: str = "model", value_name: str | None = None) -> Verdict:
        """What a score of `scorer` means by that scorer's own shipped thresholds (evaluate.verdict.verdict_for); its
        text names the value `value_name` (default: "score", fused's "p")."""
        shipped, why = self._shipped
        if shipped is not None and scorer not in shipped.by_scorer():
            why = f"no thresholds shipped for {scorer} ({VERDICT_FILE} predates them: run the evaluate stage)"
        return verdict_for(score, self.thresholds_of(scorer), why_none=why,
                           value_name=value_name or VALUE_NAMES.get(scorer, "score"))

    def judge(self, evidence: Mapping[str, float]) -> Judgement:
        """A search hit judged by the scores of `evidence` (scorer -> score, Ranking.evidence), each by its own
        scorer's thresholds: likely derived where every one reaches its 90%-precision threshold (None where one has
        none); in words, the verdicts that decide it (all where it is marked, else those that fall short or have no
        threshold), each naming its scorer, so a hit of a ranking judged by several says whose threshold judged it."""
        verdicts = {scorer: self.verdict(score, scorer, SCORER_WORDS[scorer]) for scorer, score in evidence.items()}
        marks = [verdict.derived for verdict in verdicts.values()]
        derived = None if not marks or None in marks else all(marks)
        deciding = [_named(scorer, verdict) for scorer, verdict in verdicts.items() if verdict.derived is derived]
        return Judgement(derived, " and ".join(deciding))

    @cached_property
    def fingerprint(self) -> str:
        """What identifies this model's embeddings: its weights' bytes and input size (keys the search cache)."""
        return model_folder.fingerprint(self.model_dir, self.image_size)

    def index_embedder(self) -> TrunkEmbedder:
        """This model as artsim.index embeds with it (the same transform and embedding as embed())."""
        return TrunkEmbedder(self.model, self.image_size, self.fingerprint, self.device)


def _named(scorer: str, verdict: Verdict) -> str:
    """A verdict's text naming its scorer: one with a threshold names the scorer's value; one without says whose."""
    if verdict.derived is not None:
        return verdict.text
    return f"no verdict by {SCORER_WORDS[scorer]}: {verdict.why_none}"


def compare_payload(
    scorer: Scorer, a: LoadedImage, b: LoadedImage, names: tuple[str, str] | None = None
) -> dict[str, Any]:
    """The compare JSON (`artsim compare --json`, the service's POST /compare): the names, both scores, the
    parts, and the verdict (verdict, verdict_text, threshold, precision, pairs, positives, negatives)."""
    comparison = scorer.score(a, b)
    first, second = names or (a.name, b.name)
    return {"a": first, "b": second, **comparison.as_dict(), **scorer.verdict(comparison.model_score).payload()}


# --- loading -----------------------------------------------------------------------------

def load(location: str | os.PathLike = ".", device: str | torch.device = "cpu") -> Scorer:
    """A Scorer from a workspace after `dvc repro`, or from a model folder (models/siamese or a copy)."""
    model_dir = model_folder.resolve(location)
    model, card = model_folder.load(model_dir)
    descriptor_file = model_dir / DESCRIPTOR_SCORE_FILE
    if not descriptor_file.is_file():
        raise ModelNotFound(f"{model_dir} has no {DESCRIPTOR_SCORE_FILE} (made before it was saved): "
                            "run `dvc repro` to rebuild the model")
    try:
        descriptor = DescriptorScorer.load(descriptor_file)
    except DescriptorScoreFileError as exc:
        raise ModelNotFound(f"unusable model folder: {exc}") from None
    return Scorer(model, card, descriptor, model_dir, torch.device(device))
