"""Files the pipeline writes atomically get the mode the umask gives (as open() would), not
mkstemp's 0600: on a shared filesystem the store, the feature cache and the stage outputs
must be readable by the other users that the umask lets read them."""
from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image

from artsim.core.images import jpeg_bytes, new_file_mode
from artsim.core.shards import ShardWriter
from artsim.generate.store import VariantStore
from artsim.learn.feature_cache import FeatureStore


@pytest.fixture(params=[0o022, 0o027])
def umask(request) -> Iterator[int]:
    previous = os.umask(request.param)
    new_file_mode.cache_clear()  # read once per process: read it again under this umask
    try:
        yield request.param
    finally:
        os.umask(previous)
        new_file_mode.cache_clear()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomically_written_files_get_the_umask_mode(umask: int, tmp_path: Path) -> None:
    expected = 0o666 & ~umask  # 0644 under umask 022
    image = Image.new("RGB", (8, 8), (1, 2, 3))
    with ShardWriter(tmp_path / "ingested" / "shards") as shards:
        shards.add("images/a.jpg", jpeg_bytes(image), "aa")
    store = VariantStore(tmp_path / "store")
    store.put_image("ab12", image, 90)
    features = FeatureStore(tmp_path / "features", "key")
    features.save("cd" * 32, torch.zeros(4))
    written = [tmp_path / "ingested" / "shards" / "aa.tar", store.path("ab12"), store.checksum_path("ab12"),
               features.path("cd" * 32)]
    assert {path.name: oct(_mode(path)) for path in written} == {path.name: oct(expected) for path in written}
