"""The persistent search index (artsim.index): incremental updates, damage detection, unreadable originals.

The embedder here is a small deterministic function of the pixels (the index's Embedder protocol),
counting what it is asked to embed: what matters is which originals are read and embedded again.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from artsim.core.fusion import RRF_K, fused_scores, ranks_from_scores, reciprocal_rank_fusion
from artsim.core.images import ImageRejected
from artsim.core.shards import ShardMember, ShardWriter
from artsim.index import ann, build, store
from artsim.index.build import image_at, location_of, update_index
from artsim.index.folder import folder_collection
from artsim.index.store import ANN, MANIFEST, NORMS, VECTORS, load_index
from tests.support.helpers import random_painting


class PixelEmbedder:
    """A 4 x 4 colour thumbnail as the embedding; counts the images it embeds."""

    dim = 48

    def __init__(self, fingerprint: str = "model-a") -> None:
        self.fingerprint = fingerprint
        self.embedded = 0

    def __call__(self, images):
        self.embedded += len(images)
        return np.stack([np.asarray(im.resize((4, 4)), dtype=np.float32).ravel() + 1.0 for im in images])


def _folder(tmp_path: Path, count: int = 5) -> Path:
    folder = tmp_path / "originals"
    folder.mkdir()
    for seed in range(count):
        random_painting(seed).save(folder / f"p{seed}.png")
    return folder


def _vector_of(index, identifier: str) -> np.ndarray:
    row = index.entries.ids.index(identifier)
    return np.asarray(index.vectors[row]) * index.norms[row]


def _build(folder: Path, index_dir: Path, embedder: PixelEmbedder | None = None):
    return update_index(index_dir, folder_collection(folder), embedder or PixelEmbedder())


def test_a_second_build_reads_nothing_and_keeps_every_vector(tmp_path):
    folder, index_dir = _folder(tmp_path), tmp_path / "index"
    first, report = _build(folder, index_dir)
    assert (report.embedded, report.hashed, report.unchanged) == (5, 5, 0)
    embedder = PixelEmbedder()
    second, report = _build(folder, index_dir, embedder)
    assert (report.embedded, report.hashed, report.unchanged, embedder.embedded) == (0, 0, 5, 0)
    assert second.entries.ids == first.entries.ids == [f"p{i}.png" for i in range(5)]
    np.testing.assert_array_equal(np.asarray(second.vectors), np.asarray(first.vectors))
    # the embedding kept is the embedder's, up to the unit/norm split
    expected = PixelEmbedder()([Image.open(folder / "p3.png").convert("RGB")])[0]
    np.testing.assert_allclose(_vector_of(second, "p3.png"), expected, rtol=1e-5)


def test_adding_removing_and_changing_originals_embeds_only_new_content(tmp_path):
    folder, index_dir = _folder(tmp_path), tmp_path / "index"
    first, _ = _build(folder, index_dir)
    random_painting(10).save(folder / "new.png")                    # added
    (folder / "p1.png").unlink()                                    # removed
    random_painting(11).save(folder / "p2.png")                     # changed content
    os.utime(folder / "p3.png", ns=(1, 1))                          # touched: same bytes, new mtime
    (folder / "p4.png").rename(folder / "p4-moved.png")             # moved: same bytes, new id
    embedder = PixelEmbedder()
    index, report = _build(folder, index_dir, embedder)
    assert sorted(index.entries.ids) == ["new.png", "p0.png", "p2.png", "p3.png", "p4-moved.png"]
    assert embedder.embedded == report.embedded == 2                # new.png and the changed p2.png
    assert report.hashed == 4 and report.unchanged == 1             # only p0.png is not read at all
    np.testing.assert_allclose(_vector_of(index, "p4-moved.png"), _vector_of(first, "p4.png"))
    assert not np.allclose(_vector_of(index, "p2.png"), _vector_of(first, "p2.png"))
    changed = PixelEmbedder()([Image.open(folder / "p2.png").convert("RGB")])[0]
    np.testing.assert_allclose(_vector_of(index, "p2.png"), changed, rtol=1e-5)


def test_a_new_model_re_embeds_everything_but_keeps_the_hashes(tmp_path):
    folder, index_dir = _folder(tmp_path), tmp_path / "index"
    first, _ = _build(folder, index_dir)
    embedder = PixelEmbedder("model-b")
    index, report = _build(folder, index_dir, embedder)
    assert (embedder.embedded, report.hashed, index.model) == (5, 0, "model-b")
    assert index.entries.sha256 == first.entries.sha256 and index.entries.phash == first.entries.phash


@pytest.mark.parametrize(
    "damage", ["truncate vectors", "flip a vector byte", "edit an entry", "truncate manifest", "remove norms"]
)
def test_a_damaged_index_is_detected_and_rebuilt_never_used(tmp_path, damage):
    folder, index_dir = _folder(tmp_path), tmp_path / "index"
    first, _ = _build(folder, index_dir)
    del first  # the memory map must not keep the old file alive for what follows
    vectors, manifest = index_dir / VECTORS, index_dir / MANIFEST
    if damage == "truncate vectors":
        os.truncate(vectors, vectors.stat().st_size - 100)
    elif damage == "flip a vector byte":
        data = bytearray(vectors.read_bytes())
        data[-5] ^= 0xFF
        vectors.write_bytes(bytes(data))
    elif damage == "edit an entry":
        raw = json.loads(manifest.read_text())
        raw["entries"]["locations"][0] = "../../etc/passwd"
        manifest.write_text(json.dumps(raw))
    elif damage == "truncate manifest":
        os.truncate(manifest, manifest.stat().st_size // 2)
    else:
        (index_dir / NORMS).unlink()
    index, problem = load_index(index_dir)
    assert index is None and problem
    embedder = PixelEmbedder()
    rebuilt, report = _build(folder, index_dir, embedder)
    assert report.rebuilt_because and embedder.embedded == 5
    assert load_index(index_dir)[1] is None and rebuilt.entries.locations[0] == "p0.png"


COMPACT_ORIGINALS = 30  # past the EXACT_LIMIT the `compact` fixture sets: the compact index is built


@pytest.fixture
def compact(monkeypatch):
    """The compact-index path forced with a small EXACT_LIMIT; records the usable rows of each compact index built,
    and counts the saves."""
    monkeypatch.setattr(ann, "EXACT_LIMIT", 20)
    calls = {"built": [], "saves": 0}

    def spy_compact_index(vectors, usable, *args, **kwargs):
        calls["built"].append(int(usable.sum()))
        return ann.compact_index(vectors, usable, *args, **kwargs)

    def spy_save_index(*args, **kwargs):
        calls["saves"] += 1
        return store.save_index(*args, **kwargs)

    monkeypatch.setattr(store, "compact_index", spy_compact_index)
    monkeypatch.setattr(build, "save_index", spy_save_index)
    return calls


def test_an_update_that_changes_nothing_writes_nothing_and_builds_no_compact_index(tmp_path, compact):
    folder, index_dir = _folder(tmp_path, COMPACT_ORIGINALS), tmp_path / "index"
    first, _ = _build(folder, index_dir)
    assert first.compact is not None and compact == {"built": [COMPACT_ORIGINALS], "saves": 1}
    written = {path.name: path.read_bytes() for path in index_dir.iterdir()}
    index, report = _build(folder, index_dir)
    assert report.unchanged == COMPACT_ORIGINALS and compact == {"built": [COMPACT_ORIGINALS], "saves": 1}
    assert {path.name: path.read_bytes() for path in index_dir.iterdir()} == written and ANN in written
    assert index.compact is not None and index.compact.index.ntotal == COMPACT_ORIGINALS


def test_new_entries_over_the_same_vectors_keep_the_compact_index(tmp_path, compact):
    folder, index_dir = _folder(tmp_path, COMPACT_ORIGINALS), tmp_path / "index"
    _build(folder, index_dir)
    before = (index_dir / ANN).read_bytes()
    os.utime(folder / "p3.png", ns=(1, 1))  # a new mtime, the same bytes: the same vector
    index, report = _build(folder, index_dir)
    assert report.hashed == 1 and compact == {"built": [COMPACT_ORIGINALS], "saves": 2}
    assert (index_dir / ANN).read_bytes() == before
    reloaded, problem = load_index(index_dir)
    assert problem is None and reloaded.compact is not None
    assert reloaded.entries.mtimes_ns[reloaded.entries.ids.index("p3.png")] == 1


@pytest.mark.parametrize("change, usable", [("add", 31), ("remove", 29), ("change", 30), ("break", 29)])
def test_a_changed_original_rebuilds_the_compact_index_once(tmp_path, compact, change, usable):
    folder, index_dir = _folder(tmp_path, COMPACT_ORIGINALS), tmp_path / "index"
    _build(folder, index_dir)
    _build(folder, index_dir)  # nothing changed: nothing built
    if change == "add":
        random_painting(100).save(folder / "new.png")
    elif change == "remove":
        (folder / "p5.png").unlink()
    elif change == "change":
        random_painting(101).save(folder / "p5.png")
    else:
        (folder / "p5.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    index, _ = _build(folder, index_dir)
    assert compact["built"] == [COMPACT_ORIGINALS, usable] and index.compact.index.ntotal == usable
    _, problem = load_index(index_dir)
    assert problem is None
    if change != "remove":  # the compact index proposes the new vector of p5.png, or no longer proposes it
        row = index.entries.ids.index("new.png" if change == "add" else "p5.png")
        _, proposed = index.compact.index.search(np.asarray(index.vectors[row:row + 1]), 1)
        assert (proposed[0, 0] == row) == (change != "break")


@pytest.mark.parametrize("damage", ["truncated", "another version's layout"])
def test_a_compact_index_that_does_not_check_out_is_rebuilt_at_the_next_update(tmp_path, monkeypatch, compact,
                                                                             damage):
    folder, index_dir = _folder(tmp_path, COMPACT_ORIGINALS), tmp_path / "index"
    if damage == "truncated":
        _build(folder, index_dir)
        good = (index_dir / ANN).read_bytes()
        (index_dir / ANN).write_bytes(good[: len(good) // 2])
    else:  # its checksum is right, its lists are not this version's
        with monkeypatch.context() as older:
            older.setattr(ann, "LISTS_PER_ROOT", 2)
            _build(folder, index_dir)
        good = None
    assert load_index(index_dir)[0].compact_problem
    index, report = _build(folder, index_dir)
    assert compact["built"] == [COMPACT_ORIGINALS] * 2 and report.embedded == 0
    assert index.compact is not None and index.compact_problem is None
    assert good is None or (index_dir / ANN).read_bytes() == good  # the same vectors give the same bytes
    _build(folder, index_dir)  # current again: nothing built
    assert compact["built"] == [COMPACT_ORIGINALS] * 2


def test_an_unreadable_original_is_reported_kept_out_and_not_retried(tmp_path):
    folder, index_dir = _folder(tmp_path, 3), tmp_path / "index"
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "empty.jpg").write_bytes(b"")
    os.mkfifo(folder / "pipe.png")                                  # not a file: never listed, never opened
    index, report = _build(folder, index_dir)
    assert set(report.skipped) == {"broken.png", "empty.jpg"} and report.embedded == 3
    assert index.usable.tolist() == [False, False, True, True, True]
    assert "pipe.png" not in index.entries.ids
    embedder = PixelEmbedder()
    _, again = _build(folder, index_dir, embedder)
    assert embedder.embedded == 0 and again.hashed == 0 and set(again.skipped) == {"broken.png", "empty.jpg"}
    random_painting(7).save(folder / "broken.png")                 # fixed: read and embedded again
    index, fixed = _build(folder, index_dir, embedder)
    assert embedder.embedded == 1 and set(fixed.skipped) == {"empty.jpg"}


def test_an_empty_collection_is_refused_with_a_reason(tmp_path):
    (tmp_path / "none").mkdir()
    with pytest.raises(ValueError, match="no image file"):
        folder_collection(tmp_path / "none")


def test_a_location_names_its_image_again_and_never_one_outside_the_collection(tmp_path):
    root = tmp_path / "collection"
    (root / "sub").mkdir(parents=True)
    loose = root / "sub" / "a.png"
    random_painting(0).save(loose)
    with ShardWriter(root / "shards") as shards:
        shard, offset, length = shards.add("images/b.png", loose.read_bytes(), "aa")
    member = ShardMember(root / shard, offset, length)
    assert image_at(root, location_of(loose, root)) == loose
    found = image_at(root, location_of(member, root))
    assert isinstance(found, ShardMember) and found.read_bytes() == loose.read_bytes()
    (tmp_path / "secret.png").write_bytes(b"x")
    for location in ("../secret.png", str(tmp_path / "secret.png"), "sub/../../secret.png", "shards/x.tar#12+abc"):
        with pytest.raises(ImageRejected):
            image_at(root, location)


def test_reciprocal_rank_fusion_follows_the_formula_and_rewards_agreement():
    np.testing.assert_array_equal(ranks_from_scores(np.array([0.2, 0.9, 0.5, 0.9])), [4, 1, 3, 1])
    fused = reciprocal_rank_fusion([np.array([1, 2, 3]), np.array([3, 1, 0])])
    np.testing.assert_allclose(
        fused, [1 / (RRF_K + 1) + 1 / (RRF_K + 3), 1 / (RRF_K + 2) + 1 / (RRF_K + 1), 1 / (RRF_K + 3)]
    )
    # of four, first for one scorer and last for the other loses to second for both
    model, phash = np.array([4.0, 3.0, 2.0, 1.0]), np.array([0.0, 3.0, 2.0, 4.0])
    assert int(np.argmax(fused_scores(model, phash))) == 1


def test_a_missing_manifest_cell_is_empty_text_whatever_marks_it_missing():
    import pandas as pd

    from artsim.core.shards import cell_text

    column = pd.Series(["Monet", None, float("nan"), pd.NA], dtype=object)
    assert [cell_text(value) for value in column] == ["Monet", "", "", ""]
    assert [cell_text(value) for value in pd.Series(["a", None], dtype="string")] == ["a", ""]  # not "<NA>"
