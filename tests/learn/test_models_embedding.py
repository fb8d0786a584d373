"""The siamese model's embedding: GeM over the image and its mirror, projected, L2 normalised; a mirrored
copy scores 1 with its source whatever the weights."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from artsim.core.images import load_rgb
from artsim.learn.features import split_trunk
from artsim.learn.models import (
    MirrorPairs,
    SiameseRegressor,
    load_siamese,
    pair_transform,
    save_weights,
)

SAMPLE_PAINTING = Path(__file__).resolve().parents[2] / "data/sample/Northern_Renaissance/albrecht-durer_lion-1494.jpg"
SIZE = 64


def _drawn() -> Image.Image:
    """An image no model has seen, and far from mirror-symmetric."""
    image = Image.new("RGB", (80, 64), "white")
    draw = ImageDraw.Draw(image)
    draw.ellipse((4, 8, 34, 38), fill="yellow")
    draw.rectangle((50, 30, 76, 60), fill="red")
    return image


def _inputs() -> torch.Tensor:
    transform = pair_transform(SIZE)
    return torch.stack([transform(load_rgb(SAMPLE_PAINTING)), transform(_drawn())])


def _random(embedding_dim: int | None, head: str) -> SiameseRegressor:
    """Freshly initialised weights, with the head as the baseline, calibrated, or scrambled."""
    torch.manual_seed(3)
    model = SiameseRegressor(head_hidden=8, embedding_dim=embedding_dim).eval()
    noise = torch.randn(6, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        if head == "baseline":  # the steepest distance there is: any difference scores the floor
            model.start_at(0.3)
        else:
            model.head.calibrate(model.embed(noise[:3]), model.embed(noise[3:]), 0.4)
        if head == "scrambled":
            for parameter in model.head.parameters():
                parameter.add_(torch.randn_like(parameter))
    return model


@pytest.mark.parametrize("embedding_dim", [512, None])
@pytest.mark.parametrize("head", ["baseline", "calibrated", "scrambled"])
def test_a_mirrored_image_scores_one_with_its_source_whatever_the_weights(embedding_dim, head) -> None:
    model = _random(embedding_dim, head)
    images = _inputs()  # a sample painting and a drawn image
    with torch.no_grad():
        mirrored, same = model(images.flip(-1), images), model(images, images)
        apart = model(images, images.flip(0))
        pooled = model.trunk(torch.cat([images, images.flip(-1)]))
    assert torch.allclose(same, torch.ones(2), atol=1e-4)
    assert torch.allclose(mirrored, torch.ones(2), atol=1e-4)
    # Not trivially: the trunk sees the image and its mirror differently, and other pairs score below 1.
    assert not torch.allclose(pooled[:2], pooled[2:], atol=1e-3)
    assert bool((apart < 0.999).all())


def test_the_embedding_is_l2_normalised_at_the_configured_width() -> None:
    images = _inputs()
    with torch.no_grad():
        for width, expected in ((512, 512), (128, 128), (None, 2048)):
            model = SiameseRegressor(head_hidden=4, embedding_dim=width).eval()
            embedded = model.embed(images)
            assert embedded.shape == (2, expected) and model.embedding_dim == expected
            assert torch.allclose(embedded.norm(dim=1), torch.ones(2), atol=1e-5)


@pytest.mark.parametrize(("width", "expected"), [(128, 128), (None, 2048)])  # None: no projection (the pooled features)
def test_a_saved_model_loads_at_the_width_it_was_trained_with(tmp_path: Path, width: int | None,
                                                              expected: int) -> None:
    model = _random(width, "calibrated")
    save_weights(model, tmp_path / "model.safetensors")
    loaded = load_siamese(tmp_path / "model.safetensors", head_hidden=8)
    images = _inputs()
    with torch.no_grad():
        assert loaded.embedding_dim == expected
        assert isinstance(loaded.projection, torch.nn.Identity) == (width is None)
        assert torch.equal(loaded.embed(images), model.embed(images))


def test_cached_bottom_features_of_image_and_mirror_embed_as_the_images_do() -> None:
    model = _random(512, "calibrated")
    bottom, top = split_trunk(model.trunk, ["layer4"])
    images = _inputs()
    with torch.no_grad():
        cached = MirrorPairs(bottom)(images)  # what the feature cache stores per image
        mirrored_cached = MirrorPairs(bottom)(images.flip(-1))
        assert cached.shape[:2] == (2, 2)
        from_cache, direct = model.embed(cached, top), model.embed(images)
        assert torch.allclose(from_cache, direct, atol=1e-5)
        assert torch.equal(model.embed(mirrored_cached, top), from_cache)
