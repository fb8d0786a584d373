"""The descriptor cache recomputes only what changed: counted calls of each descriptor's vector
function (each descriptor of artsim.describe.registry). One file per image; damaged files healed; concurrent
writers leave whole files."""
from __future__ import annotations

import dataclasses
import os
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from artsim.core.images import content_hash
from artsim.core.vector_files import read_vectors, write_vectors
from artsim.describe import color, edges, registry, structure, texture
from artsim.describe import run as describe_run
from artsim.describe.cache import DescriptorCache, descriptor_of
from artsim.describe.run import describe_to_parquet
from artsim.describe.table import ImageEntry
from artsim.params import DescribeParams
from tests.describe.test_run import random_image, save_jpeg

PARAMS = DescribeParams()
# The function that computes each descriptor's vector, on its family's module.
VECTOR_FUNCTIONS = {
    "color": (color, "color_histogram"), "texture": (texture, "haralick_texture"),
    "edges": (edges, "edge_density_grid"), "lab": (color, "lab_grid"),
    "lbp": (texture, "lbp_histograms"), "orientation": (edges, "orientation_grid"),
    "phash": (structure, "phash_vector"), "layout": (structure, "layout_thumbnail"),
}


def each(count: int, **overrides: int) -> dict[str, int]:
    """`count` calls of every descriptor, but `overrides`."""
    return {**dict.fromkeys(VECTOR_FUNCTIONS, count), **overrides}


@pytest.fixture
def calls(monkeypatch) -> Counter:
    """Counts the calls of each descriptor's function (the describe runs in-process, workers=1)."""
    counted: Counter = Counter()
    for descriptor, (module, name) in VECTOR_FUNCTIONS.items():
        original = getattr(module, name)

        def counting(*args, _descriptor=descriptor, _original=original, **kwargs):
            counted[_descriptor] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, name, counting)
    return counted


def make_images(folder: Path, first: int, count: int) -> list[ImageEntry]:
    entries = [ImageEntry(f"img{i}", "original", folder / f"img{i}.jpg") for i in range(first, first + count)]
    for entry in entries:
        save_jpeg(random_image(int(entry.id[3:]), (40, 56)), entry.path)
    return entries


def cache_file(cache: DescriptorCache, entry: ImageEntry) -> Path:
    return cache.path(content_hash(entry.path.read_bytes()))


def stored(path: Path) -> dict[str, np.ndarray]:
    vectors, problem = read_vectors(path, {})
    assert problem is None, problem
    return vectors


def run(entries: list[ImageEntry], params: DescribeParams, cache: Path, out: Path, calls: Counter) -> dict[str, int]:
    """One describe run; returns the vector function calls it made, by descriptor."""
    before = Counter(calls)
    describe_to_parquet(entries, params, out, cache_root=cache)
    return {name: calls[name] - before[name] for name in VECTOR_FUNCTIONS}


def test_cache_recomputes_only_what_changed(tmp_path, calls):
    cache, out = tmp_path / "cache", tmp_path / "out"
    entries = make_images(tmp_path / "images", 0, 5)

    assert run(entries, PARAMS, cache, out, calls) == each(5)
    first = pd.read_parquet(out / "descriptors.parquet")

    assert run(entries, PARAMS, cache, out, calls) == each(0)
    again = pd.read_parquet(out / "descriptors.parquet")
    for name in VECTOR_FUNCTIONS:
        assert all(np.array_equal(a, b) for a, b in zip(first[name], again[name]))

    added = entries + make_images(tmp_path / "images", 5, 3)
    assert run(added, PARAMS, cache, out, calls) == each(3)

    new_canny = PARAMS.model_copy(update={"canny_low": 20.0})
    assert run(added, new_canny, cache, out, calls) == each(0, edges=8)

    new_levels = new_canny.model_copy(update={"haralick_levels": 16})
    assert run(added, new_levels, cache, out, calls) == each(0, texture=8)


def test_a_new_or_changed_candidate_is_the_only_one_computed(tmp_path, calls, monkeypatch):
    cache, out = tmp_path / "cache", tmp_path / "out"
    entries = make_images(tmp_path / "images", 0, 4)
    run(entries, PARAMS, cache, out, calls)
    # A candidate just added to the registry finds no entry of its own: as if phash's were never stored.
    for path in DescriptorCache(cache, PARAMS).folder.rglob("*.vectors"):
        write_vectors(path, {key: v for key, v in stored(path).items() if descriptor_of(key) != "phash"})
    assert run(entries, PARAMS, cache, out, calls) == each(0, phash=4)
    # A candidate whose code changed (its version bumped) gets a new key: only it is computed again.
    bumped = dataclasses.replace(registry.DESCRIPTORS["layout"], version=registry.DESCRIPTORS["layout"].version + 1)
    monkeypatch.setitem(registry.DESCRIPTORS, "layout", bumped)
    describe_run._open_cache.cache_clear()  # a changed code runs in a new process, with no cache opened yet
    assert run(entries, PARAMS, cache, out, calls) == each(0, layout=4)


def test_cache_is_keyed_by_content_not_by_name(tmp_path, calls):
    cache = tmp_path / "cache"
    entries = make_images(tmp_path / "images", 0, 2)
    run(entries, PARAMS, cache, tmp_path / "out", calls)
    renamed = ImageEntry("other-id", "generated", tmp_path / "elsewhere.jpg")
    renamed.path.write_bytes(entries[0].path.read_bytes())
    assert run([renamed], PARAMS, cache, tmp_path / "out2", calls) == each(0)


def test_one_file_per_image_holds_every_candidate(tmp_path, calls):
    cache_root = tmp_path / "cache"
    entries = make_images(tmp_path / "images", 0, 3)
    run(entries, PARAMS, cache_root, tmp_path / "out", calls)
    cache = DescriptorCache(cache_root, PARAMS)
    files = sorted(path for path in cache_root.rglob("*") if path.is_file())
    assert files == sorted(cache_file(cache, entry) for entry in entries)
    for path in files:
        assert {key: len(v) for key, v in stored(path).items()} == cache.lengths


def test_a_changed_setting_replaces_that_candidates_entry(tmp_path, calls):
    cache_root, out = tmp_path / "cache", tmp_path / "out"
    entries = make_images(tmp_path / "images", 0, 2)
    run(entries, PARAMS, cache_root, out, calls)
    new_canny = PARAMS.model_copy(update={"canny_low": 20.0})
    run(entries, new_canny, cache_root, out, calls)
    old_keys, new_keys = DescriptorCache(cache_root, PARAMS).keys, DescriptorCache(cache_root, new_canny).keys
    assert old_keys["edges"] != new_keys["edges"]
    for entry in entries:
        # The file does not grow with every setting tried: edges' older entry is gone.
        assert set(stored(cache_file(DescriptorCache(cache_root, PARAMS), entry))) == set(new_keys.values())
    # The price: going back to the earlier setting computes edges again (and only edges).
    assert run(entries, PARAMS, cache_root, out, calls) == each(0, edges=2)


def test_damaged_files_are_healed_counted_and_recomputed(tmp_path, calls):
    cache_root, out = tmp_path / "cache", tmp_path / "out"
    entries = make_images(tmp_path / "images", 0, 6)
    run(entries, PARAMS, cache_root, out, calls)
    expected = pd.read_parquet(out / "descriptors.parquet")
    cache = DescriptorCache(cache_root, PARAMS)
    files = [cache_file(cache, entry) for entry in entries]
    files[0].write_bytes(b"")                                                    # emptied by a crash
    files[1].write_bytes(files[1].read_bytes()[:-100])                           # truncated
    flipped = bytearray(files[2].read_bytes())
    flipped[len(flipped) // 2] ^= 0x10                                            # one bit of a value changed
    files[2].write_bytes(bytes(flipped))
    edges, lbp = cache.keys["edges"], cache.keys["lbp"]
    write_vectors(files[3], {**stored(files[3]), edges: np.zeros(3)})            # wrong length, valid checksum
    write_vectors(files[4], {**stored(files[4]), lbp: np.full(cache.lengths[lbp], np.nan)})  # non-finite

    report = describe_to_parquet(entries, PARAMS, out, cache_root=cache_root)
    assert report.healed == 5
    assert report.computed == each(5)  # a damaged file is not trusted in part: all its vectors again
    healed = pd.read_parquet(out / "descriptors.parquet")
    for name in VECTOR_FUNCTIONS:
        assert all(np.array_equal(a, b) for a, b in zip(expected[name], healed[name]))
    assert run(entries, PARAMS, cache_root, out, calls) == each(0)


def test_concurrent_writers_of_one_image_leave_a_whole_file(tmp_path):
    """Threads stand for experiments sharing the cache: each saves its own candidate of the same
    image again and again while another loads; no load may ever see a damaged file."""
    image_sha256 = content_hash(b"one image")
    reference = DescriptorCache(tmp_path, PARAMS)
    written = {name: np.arange(reference.lengths[reference.keys[name]], dtype=np.float64) + i
               for i, name in enumerate(["color", "lbp", "phash"])}
    caches = {name: DescriptorCache(tmp_path, PARAMS) for name in [*written, "reader"]}
    loaded: list[dict[str, np.ndarray]] = []

    def write(name: str) -> None:
        for _ in range(200):
            caches[name].save(image_sha256, {name: written[name]})

    def read() -> None:
        for _ in range(400):
            loaded.append(caches["reader"].load(image_sha256))

    threads = [threading.Thread(target=write, args=(name,)) for name in written] + [threading.Thread(target=read)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    loaded.append(caches["reader"].load(image_sha256))
    assert [cache.healed for cache in caches.values()] == [0] * len(caches)
    assert loaded[-1], "the last writer's file is there"
    for vectors in loaded:
        assert set(vectors) <= set(written)
        for name, vector in vectors.items():  # present and right, or absent (lost to a race: computed again)
            assert np.array_equal(vector, written[name])


def test_cache_entries_get_the_umask_mode(tmp_path, calls):
    entries = make_images(tmp_path / "images", 0, 1)
    previous = os.umask(0o022)
    try:
        run(entries, PARAMS, tmp_path / "cache", tmp_path / "out", calls)
    finally:
        os.umask(previous)
    modes = {path.stat().st_mode & 0o777 for path in (tmp_path / "cache").rglob("*.vectors")}
    assert modes == {0o644}, "cache entries must be readable by others as any other file is (not mkstemp's 0600)"


def test_run_only_keys_stay_out_of_the_recorded_describe_params():
    recorded = DescribeParams(workers=3, cache="/tmp/elsewhere").model_dump(mode="json")
    assert "workers" not in recorded and "cache" not in recorded
