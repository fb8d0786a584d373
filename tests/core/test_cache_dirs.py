"""Where the variant store and the feature cache live by default, and that several processes
(queued experiments, ranks) may write the same entries at once."""
from __future__ import annotations

import io
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from artsim.core.cache_dirs import CACHE_ENV, default_cache, user_cache_root
from artsim.generate.store import TEMP_PREFIX, Entry, VariantStore
from artsim.learn.feature_cache import FeatureStore
from artsim.params import ParamsError, parse_params

KEYS = [f"{index:04x}{'ab' * 30}" for index in range(40)]
ROUNDS = 3
FEATURE_SHAPE = (8, 4, 4)


def test_null_cache_params_name_the_user_cache_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "shared"))
    params = parse_params(
        {"ingest": {"source": "data/sample"}, "generate": {"store": None}, "siamese": {"feature_cache": None}}
    )
    assert params.generate.store == tmp_path / "shared" / "variants"
    assert params.siamese.feature_cache == tmp_path / "shared" / "features"
    assert params.describe.cache == tmp_path / "shared" / "descriptors"
    # Left out, they are null too; a folder named in params is taken as it is (relative: the workspace).
    assert parse_params({"ingest": {"source": "data/sample"}}).generate.store == tmp_path / "shared" / "variants"
    assert parse_params({"ingest": {"source": "data/sample"}}).describe.cache == tmp_path / "shared" / "descriptors"
    assert parse_params(
        {"ingest": {"source": "data/sample"}, "generate": {"store": ".artsim/cache"}}
    ).generate.store == Path(".artsim/cache")


def test_without_the_variable_the_platform_user_cache_folder_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # where platformdirs looks first on Linux
    assert user_cache_root() == tmp_path / "xdg" / "artsim"
    assert default_cache("features") == tmp_path / "xdg" / "artsim" / "features"


def test_a_relative_cache_variable_fails_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Relative to each experiment's own copy of the workspace, it would share nothing.
    monkeypatch.setenv(CACHE_ENV, "some/cache")
    with pytest.raises(ParamsError, match=rf"generate\.store.*\${CACHE_ENV} must be an absolute path"):
        parse_params({"ingest": {"source": "data/sample"}, "generate": {}})


def test_a_user_cache_inside_a_dvc_output_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "data" / "generated"))
    with pytest.raises(ParamsError, match=r"generate\.store.*inside data/generated"):
        parse_params({"ingest": {"source": "data/sample"}, "generate": {"store": None}})


def _variant_bytes(key: str) -> bytes:
    # Deterministic per key, as a variant's bytes are for one key.
    buffer = io.BytesIO()
    Image.new("RGB", (16, 12), (int(key[:2], 16), 90, 30)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _features(key: str) -> torch.Tensor:
    return torch.full(FEATURE_SHAPE, float(int(key[:4], 16)))


def _write_both_stores(root: str, start: multiprocessing.synchronize.Barrier) -> None:
    variants = VariantStore(Path(root) / "variants")
    features = FeatureStore(Path(root) / "features", "model", torch.float32, FEATURE_SHAPE)
    start.wait()
    for _ in range(ROUNDS):
        for key in KEYS:
            variants.put_bytes(key, _variant_bytes(key))
            features.save(key, _features(key))


def test_two_processes_writing_the_same_entries_leave_whole_sound_ones(tmp_path: Path) -> None:
    """Two queued experiments (or ranks) write the same keys at the same time, several times
    over: both succeed, and each entry is whole and sound, with no temporary files left."""
    context = multiprocessing.get_context("spawn")  # no fork of a process holding torch's threads
    start = context.Barrier(2)
    writers = [context.Process(target=_write_both_stores, args=(str(tmp_path), start)) for _ in range(2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=300)
    assert [writer.exitcode for writer in writers] == [0, 0]

    variants = VariantStore(tmp_path / "variants")
    assert all(variants.check(key) is Entry.SOUND for key in KEYS)
    assert all(variants.path(key).read_bytes() == _variant_bytes(key) for key in KEYS)
    features = FeatureStore(tmp_path / "features", "model", torch.float32, FEATURE_SHAPE)
    assert all(features.usable(key) for key in KEYS) and features.healed == 0
    assert all(np.array_equal(features.load(key).numpy(), _features(key).numpy()) for key in KEYS)
    assert not list(tmp_path.rglob(f"{TEMP_PREFIX}*"))
