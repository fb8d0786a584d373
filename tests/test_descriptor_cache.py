"""The descriptor cache recomputes only what changed: counted calls of each descriptor family
(each candidate of artsim.candidates)."""
from __future__ import annotations

import dataclasses
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from artsim import candidate_vectors, candidates, describe_run, descriptors
from artsim.config import DescribeParams
from artsim.describe_run import describe_to_parquet
from artsim.descriptor_cache import DescriptorCache
from artsim.descriptors import ImageEntry
from tests.test_descriptors import random_image, save_jpeg

PARAMS = DescribeParams()
# The function that computes each candidate's vector, on the module it lives in.
FAMILY_FUNCTIONS = {
    "color": (descriptors, "color_histogram"), "texture": (descriptors, "haralick_texture"),
    "edges": (descriptors, "edge_density_grid"), "lab": (candidate_vectors, "lab_grid"),
    "lbp": (candidate_vectors, "lbp_histograms"), "orientation": (candidate_vectors, "orientation_grid"),
    "phash": (candidate_vectors, "phash_bits"), "layout": (candidate_vectors, "layout_thumbnail"),
}


def each(count: int, **overrides: int) -> dict[str, int]:
    """`count` calls of every family, but `overrides`."""
    return {**dict.fromkeys(FAMILY_FUNCTIONS, count), **overrides}


@pytest.fixture
def calls(monkeypatch) -> Counter:
    """Counts the calls of each family's function (the describe runs in-process, workers=1)."""
    counted: Counter = Counter()
    for family, (module, name) in FAMILY_FUNCTIONS.items():
        original = getattr(module, name)

        def counting(*args, _family=family, _original=original, **kwargs):
            counted[_family] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, name, counting)
    return counted


def make_images(folder: Path, first: int, count: int) -> list[ImageEntry]:
    entries = [ImageEntry(f"img{i}", "original", folder / f"img{i}.jpg") for i in range(first, first + count)]
    for entry in entries:
        save_jpeg(random_image(int(entry.id[3:]), (40, 56)), entry.path)
    return entries


def run(entries: list[ImageEntry], params: DescribeParams, cache: Path, out: Path, calls: Counter) -> dict[str, int]:
    """One describe run; returns the family calls it made."""
    before = Counter(calls)
    describe_to_parquet(entries, params, out, cache_root=cache)
    return {family: calls[family] - before[family] for family in FAMILY_FUNCTIONS}


def test_cache_recomputes_only_what_changed(tmp_path, calls):
    cache, out = tmp_path / "cache", tmp_path / "out"
    entries = make_images(tmp_path / "images", 0, 5)

    assert run(entries, PARAMS, cache, out, calls) == each(5)
    first = pd.read_parquet(out / "descriptors.parquet")

    assert run(entries, PARAMS, cache, out, calls) == each(0)
    again = pd.read_parquet(out / "descriptors.parquet")
    for name in FAMILY_FUNCTIONS:
        assert all(np.array_equal(a, b) for a, b in zip(first[name], again[name]))

    added = entries + make_images(tmp_path / "images", 5, 3)
    assert run(added, PARAMS, cache, out, calls) == each(3)

    new_canny = PARAMS.model_copy(update={"canny_low": 20.0})
    assert run(added, new_canny, cache, out, calls) == each(0, edges=8)

    new_levels = PARAMS.model_copy(update={"haralick_levels": 16})
    assert run(added, new_levels, cache, out, calls) == each(0, texture=8)


def test_a_new_or_changed_candidate_is_the_only_one_computed(tmp_path, calls, monkeypatch):
    cache, out = tmp_path / "cache", tmp_path / "out"
    entries = make_images(tmp_path / "images", 0, 4)
    run(entries, PARAMS, cache, out, calls)
    # A candidate just added to the registry finds no folder of its own: as if phash's were never made.
    for folder in cache.glob("phash-*"):
        for path in sorted(folder.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        folder.rmdir()
    assert run(entries, PARAMS, cache, out, calls) == each(0, phash=4)
    # A candidate whose code changed (its version bumped) names a new folder: only it is computed again.
    bumped = dataclasses.replace(candidates.CANDIDATES["layout"], version=candidates.CANDIDATES["layout"].version + 1)
    monkeypatch.setitem(candidates.CANDIDATES, "layout", bumped)
    describe_run._open_cache.cache_clear()  # a changed code runs in a new process, with no cache opened yet
    assert run(entries, PARAMS, cache, out, calls) == each(0, layout=4)


def test_cache_is_keyed_by_content_not_by_name(tmp_path, calls):
    cache = tmp_path / "cache"
    entries = make_images(tmp_path / "images", 0, 2)
    run(entries, PARAMS, cache, tmp_path / "out", calls)
    renamed = ImageEntry("other-id", "generated", tmp_path / "elsewhere.jpg")
    renamed.path.write_bytes(entries[0].path.read_bytes())
    assert run([renamed], PARAMS, cache, tmp_path / "out2", calls) == each(0)


def test_damaged_entries_are_recomputed_and_counted(tmp_path, calls):
    cache_root, out = tmp_path / "cache", tmp_path / "out"
    entries = make_images(tmp_path / "images", 0, 3)
    run(entries, PARAMS, cache_root, out, calls)
    expected = pd.read_parquet(out / "descriptors.parquet")
    cache = DescriptorCache(cache_root, PARAMS)
    texture_entries = sorted(cache.folders["texture"].rglob("*.npy"))
    texture_entries[0].write_bytes(b"")                                      # emptied by a crash
    texture_entries[1].write_bytes(texture_entries[1].read_bytes()[:-8])      # truncated
    edge_entry = next(cache.folders["edges"].rglob("*.npy"))
    np.save(edge_entry, np.full(PARAMS.edge_grid ** 2, np.nan))               # foreign values

    report = describe_to_parquet(entries, PARAMS, out, cache_root=cache_root)
    assert report.healed == 3
    assert report.computed == each(0, texture=2, edges=1)
    healed = pd.read_parquet(out / "descriptors.parquet")
    for name in FAMILY_FUNCTIONS:
        assert all(np.array_equal(a, b) for a, b in zip(expected[name], healed[name]))
    assert run(entries, PARAMS, cache_root, out, calls) == each(0)


def test_cache_entries_get_the_umask_mode(tmp_path, calls):
    entries = make_images(tmp_path / "images", 0, 1)
    previous = os.umask(0o022)
    try:
        run(entries, PARAMS, tmp_path / "cache", tmp_path / "out", calls)
    finally:
        os.umask(previous)
    modes = {path.stat().st_mode & 0o777 for path in (tmp_path / "cache").rglob("*.npy")}
    assert modes == {0o644}, "cache entries must be readable by others as any other file is (not mkstemp's 0600)"


def test_run_only_keys_stay_out_of_the_recorded_describe_params():
    recorded = DescribeParams(workers=3, cache="/tmp/elsewhere").model_dump(mode="json")
    assert "workers" not in recorded and "cache" not in recorded
