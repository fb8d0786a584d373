"""The score's fixed points (issue 17 §1): an image scores 1 with itself, on the model (by
construction of its head) and on every candidate descriptor, for images seen and unseen, at any size."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import artsim
from artsim.describe.registry import DESCRIPTORS
from artsim.describe.texture import HARALICK_FEATURES
from artsim.learn.models import NORMALISATION, SiameseRegressor, save_weights
from artsim.params import DescribeParams, ScoreWeights
from artsim.score.scorer import DescriptorScorer
from artsim.score.similarity import TextureStats
from tests.support.helpers import REPO_ROOT

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SAMPLE = sorted((REPO_ROOT / "data/sample").rglob("*.jpg"))[:4]
IMAGE_SIZE = 32


def _unseen() -> dict[str, Image.Image]:
    rng = np.random.default_rng(7)
    return {
        "noise": Image.fromarray(rng.integers(0, 256, (90, 60, 3), dtype=np.uint8)),
        "flat": Image.new("RGB", (50, 50), (200, 30, 90)),
        "black": Image.new("RGB", (40, 40), (0, 0, 0)),
        "tiny_8x8": Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)),
        "wide_2000x20": Image.fromarray(rng.integers(0, 256, (20, 2000, 3), dtype=np.uint8)),
        "tall_20x2000": Image.fromarray(rng.integers(0, 256, (2000, 20, 3), dtype=np.uint8)),
    }


def _trained_looking_model(seed: int) -> SiameseRegressor:
    """Weights as training leaves them: calibrated features, uneven output weights, a pair-dependent floor."""
    torch.manual_seed(seed)
    model = SiameseRegressor(head_hidden=16).eval()
    images = torch.randn(12, 3, IMAGE_SIZE, IMAGE_SIZE)
    with torch.no_grad():
        embeddings = model.embed(images)
        torch.nn.init.normal_(model.head.output_logits, std=1.0)
        model.head.calibrate(embeddings[:6], embeddings[6:], 0.5)
        _uneven_floor(model, bias=-0.8, std=0.1)
    return model


def _uneven_floor(model: SiameseRegressor, bias: float, std: float = 1.0) -> None:
    with torch.no_grad():
        torch.nn.init.normal_(model.head.floor_output.weight, std=std)
        model.head.floor_output.bias.fill_(bias)


@pytest.fixture(scope="module", params=[0, 1])
def scorer(request, tmp_path_factory) -> artsim.app.api.Scorer:
    folder = tmp_path_factory.mktemp(f"model{request.param}")
    save_weights(_trained_looking_model(request.param), folder / "model.safetensors")
    (folder / "card.json").write_text(
        json.dumps({"image_size": IMAGE_SIZE, "head_hidden": 16, "normalisation": NORMALISATION})
    )
    stats = TextureStats(mean=np.zeros(HARALICK_FEATURES), std=np.full(HARALICK_FEATURES, 2.0))
    every_candidate = ScoreWeights({name: 1.0 for name in DESCRIPTORS})
    DescriptorScorer(DescribeParams(size=64), every_candidate, stats).save(folder / "descriptor_score.json")
    return artsim.load(folder)


def _images() -> dict[str, Image.Image]:
    sample = {path.stem: Image.open(path).convert("RGB") for path in SAMPLE}
    return {**sample, **_unseen()}


def test_model_scores_one_for_an_image_with_itself_seen_or_unseen_at_any_size(scorer) -> None:
    assert len(SAMPLE) == 4
    for name, image in _images().items():
        assert scorer.score(image, image).model_score == pytest.approx(1.0, abs=1e-4), name
        # A copy of the same pixels in another object is the same image.
        assert scorer.score(image, image.copy()).model_score == pytest.approx(1.0, abs=1e-4), name


def test_model_score_is_symmetric_in_the_unit_interval_and_below_one_for_different_images(scorer) -> None:
    images = list(_images().values())
    scores = []
    for i, a in enumerate(images):
        for b in images[i + 1:]:
            forward, backward = scorer.score(a, b).model_score, scorer.score(b, a).model_score
            assert forward == backward
            assert 0.0 <= forward <= 1.0
            scores.append(forward)
    assert max(scores) < 1.0 - 1e-3 and np.std(scores) > 1e-3


def test_self_score_is_one_whatever_the_head_weights() -> None:
    # By construction: f(0) = 0 for any weights, so no training can lose the fixed point,
    # whatever the pair-dependent floor p says (even p near 0 or near 1).
    model = _trained_looking_model(3)
    embeddings = torch.randn(5, model.embedding_dim)
    for scale, floor_bias in ((-5.0, -8.0), (0.0, 0.0), (5.0, 3.0), (40.0, -0.8)):
        with torch.no_grad():
            model.head.log_scale.fill_(scale)
            torch.nn.init.normal_(model.head.output_logits, std=3.0)
            _uneven_floor(model, floor_bias, std=3.0)
            same = model.score_embeddings(embeddings, embeddings)
            floors = model.head.floor(embeddings, embeddings)
        assert bool((floors < 1 - 1e-3).any())  # the floor alone would not give 1
        assert torch.allclose(same, torch.ones(5), atol=1e-6)


def test_head_is_its_floor_far_from_identity_and_between_floor_and_one_elsewhere() -> None:
    model = _trained_looking_model(4)
    with torch.no_grad():
        images = torch.randn(12, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(5))
        ea, eb = model.embed(images[:6]), model.embed(images[6:])
        floors, ba_floors = model.head.floor(ea, eb), model.head.floor(eb, ea)
        scores = model.score_embeddings(ea, eb)
        near = model.score_embeddings(ea, ea + 1e-3 * eb)
        model.head.log_scale.fill_(30.0)  # every distance far
        far = model.score_embeddings(ea, eb)
    assert torch.equal(floors, ba_floors)  # p is symmetric bit for bit
    assert float(floors.std()) > 1e-3  # and pair-dependent
    # In [p, 1] (p within float rounding: 1 - (1 - p) is p to one ulp of 1), and not 1.
    assert bool((scores >= floors - 1e-6).all() & (scores <= 1).all() & (scores < 1 - 1e-4).all())
    assert bool((near > scores).all())  # the distance lifts close pairs toward 1
    assert torch.allclose(far, floors, atol=1e-6)


def test_descriptor_score_of_an_image_with_itself_is_one_for_every_candidate(scorer) -> None:
    for name, image in _images().items():
        comparison = scorer.score(image, image)
        assert set(comparison.similarities) == set(DESCRIPTORS)
        for descriptor, similarity in comparison.similarities.items():
            assert similarity == pytest.approx(1.0, abs=1e-9), (name, descriptor)
        assert comparison.descriptor_score == pytest.approx(1.0, abs=1e-9), name
