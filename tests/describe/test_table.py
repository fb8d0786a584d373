"""descriptors.parquet read as one float64 matrix per descriptor: each row is that image's vector,
found by id; a row that is not whole (a vector of another length, a null, a repeated id) is left
out and reported with its reason, the others still read."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from artsim.describe.run import DescriptorWriter
from artsim.describe.table import (
    BAD_DESCRIPTORS,
    Descriptors,
    DescriptorSet,
    ImageEntry,
    descriptor_matrices,
    descriptor_row,
    descriptor_table,
    read_descriptors,
)
from artsim.params import DESCRIPTOR_NAMES

LENGTHS = {name: 3 + i for i, name in enumerate(DESCRIPTOR_NAMES)}


def images(count: int, seed: int = 0) -> dict[str, Descriptors]:
    rng = np.random.default_rng(seed)
    return {f"img{i:03d}": Descriptors(**{name: rng.normal(size=n) for name, n in LENGTHS.items()})
            for i in range(count)}


def write(path: Path, described: dict[str, Descriptors], rows_per_group: int = 1_000_000) -> Path:
    rows = [descriptor_row(ImageEntry(image_id, "original", path), d) for image_id, d in described.items()]
    pq.write_table(pa.Table.from_pandas(descriptor_table(rows), preserve_index=False), path,
                   row_group_size=rows_per_group)
    return path


@pytest.mark.parametrize("rows_per_group", [1_000_000, 7])  # one chunk of floats, or several
def test_each_row_of_each_matrix_is_that_images_vector(tmp_path: Path, rows_per_group: int) -> None:
    described = images(30)
    loaded = read_descriptors(write(tmp_path / "d.parquet", described, rows_per_group))
    assert list(loaded.ids) == list(described) and loaded.names == DESCRIPTOR_NAMES
    for name, length in LENGTHS.items():
        assert loaded[name].shape == (30, length) and loaded[name].dtype == np.float64
        assert loaded[name].flags.c_contiguous
        for row, image in enumerate(described.values()):
            assert np.array_equal(loaded[name][row], image[name])
    one = loaded.image("img017")
    assert all(np.array_equal(one[name], described["img017"][name]) for name in LENGTHS)
    picked = loaded.select(["img020", "img003"])
    assert list(picked.ids) == ["img020", "img003"]
    assert np.array_equal(picked["color"], np.stack([described["img020"].color, described["img003"].color]))
    assert loaded.described(["img003", "nowhere"]).tolist() == [True, False]
    with pytest.raises(KeyError, match="nowhere"):
        loaded.positions(["img003", "nowhere"])


def test_rows_that_are_not_whole_are_left_out_with_their_reason(tmp_path: Path, caplog) -> None:
    described = images(12)
    table = descriptor_table([descriptor_row(ImageEntry(i, "original", tmp_path), d) for i, d in described.items()])
    table.at[2, "color"] = table.at[2, "color"][:-1]  # ragged: one float short
    table.at[5, "texture"] = None  # no vector at all
    table.at[7, "edges"] = [*table.at[7, "edges"][:-1], None]  # a null float
    table.at[9, "id"] = "img001"  # a repeated id: the first keeps its row
    path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), path, row_group_size=4)
    with caplog.at_level(logging.WARNING):
        loaded = read_descriptors(path)
    matrices, bad = descriptor_matrices(path)
    assert {b.id: b.detail for b in bad} == {
        "img002": f"color: {LENGTHS['color'] - 1} values, not {LENGTHS['color']}",
        "img005": "texture: no vector",
        "img007": "edges: 1 null values",
        "img001": "an id given before",
    }
    assert {b.reason for b in bad} == {BAD_DESCRIPTORS}
    assert all(b.id in caplog.text for b in bad) and "no vector" in caplog.text
    kept = [i for row, i in enumerate(described) if row not in (2, 5, 7, 9)]
    assert list(loaded.ids) == list(matrices.ids) == kept
    for name in LENGTHS:
        assert np.array_equal(loaded[name], np.stack([described[i][name] for i in kept]))


@pytest.mark.parametrize("rows_per_group", [1_000_000, 4])
def test_a_read_of_some_ids_holds_their_rows_only_as_a_whole_read_has_them(tmp_path: Path, caplog,
                                                                         rows_per_group: int) -> None:
    """What evaluate reads: the images it scores, not the training variants; a bad row of an image not asked for is
    neither held nor reported."""
    described = images(12)
    table = descriptor_table([descriptor_row(ImageEntry(i, "original", tmp_path), d) for i, d in described.items()])
    table.at[2, "color"] = table.at[2, "color"][:-1]  # bad, and not asked for
    table.at[6, "texture"] = None  # bad, and asked for
    path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), path, row_group_size=rows_per_group)
    wanted = {"img010", "img001", "img006", "img005", "img007", "nowhere"}
    with caplog.at_level(logging.WARNING):
        some = read_descriptors(path, wanted)
    assert "img006" in caplog.text and "img002" not in caplog.text
    assert list(some.ids) == ["img001", "img005", "img007", "img010"]  # the file's order
    whole = read_descriptors(path).select(list(some.ids))
    for name, length in LENGTHS.items():
        assert some[name].shape == (4, length) and np.array_equal(some[name], whole[name])
    assert len(read_descriptors(path, set())) == 0


def test_an_empty_file_reads_as_no_image(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    DescriptorWriter(path).close()
    loaded = read_descriptors(path)
    assert len(loaded) == 0 and not loaded.described(["img000"]).any()


def test_a_set_of_one_mapping_keeps_its_order_and_vectors() -> None:
    described = images(4, seed=3)
    stacked = DescriptorSet.of(described)
    assert list(stacked.ids) == list(described)
    assert np.array_equal(stacked.take(np.array([2]))["lab"][0], described["img002"]["lab"])
