"""The feature cache refuses, before computing anything, to fill its disk, with a message
that says how much it needs and which params or folders to change."""
from __future__ import annotations

from collections import namedtuple
from pathlib import Path

import pytest
import torch

from artsim.learn import feature_cache
from artsim.learn.feature_cache import FeatureCacheTooLarge, FeatureStore, cache_features
from tests.support.tiny_project import build_tiny_project

DiskUsage = namedtuple("DiskUsage", "total used free")
STUDY_MAP = (1024, 14, 14)  # layer3's output at 224 px: what `train_layers: [layer4]` caches


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    return sorted((build_tiny_project(tmp_path / "tiny")["ingested"] / "images").glob("*.jpg"))[:3]


def _free_bytes(monkeypatch: pytest.MonkeyPatch, free: int) -> None:
    monkeypatch.setattr(feature_cache.shutil, "disk_usage", lambda _: DiskUsage(free, 0, free))


def test_features_that_would_not_fit_stop_before_any_is_computed(images, tmp_path: Path, monkeypatch) -> None:
    store = FeatureStore(tmp_path / "features", "key", torch.bfloat16, STUDY_MAP)
    _free_bytes(monkeypatch, 1_000_000)  # 1 MB: two of the three ~400 KB maps fit
    with pytest.raises(FeatureCacheTooLarge) as refused:
        cache_features(torch.nn.Identity(), images, store, 32, 2, torch.device("cpu"))
    message = str(refused.value)
    assert "siamese.feature_cache" in message and "siamese.train_layers" in message
    assert "3 images x 402 KB" in message
    assert not store.folder.exists() or not list(store.folder.rglob("*.npy"))


def test_features_that_fit_are_cached(images, tmp_path: Path, monkeypatch) -> None:
    bottom = torch.nn.Conv2d(3, 2, 3, stride=8)
    store = FeatureStore(tmp_path / "features", "key", torch.float32, (2, 4, 4))
    _free_bytes(monkeypatch, 10_000)  # three 256-byte maps (+ headers) fit
    digests, rejected = cache_features(bottom, images, store, 32, 2, torch.device("cpu"))
    assert not rejected and all(store.usable(digest) for digest in digests)
