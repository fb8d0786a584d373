"""Descriptors of one image, and the describe stream/stage on fake manifests with broken files."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from artsim.core.grid import cell_index, cell_means
from artsim.core.images import read_rgb_array
from artsim.describe.color import color_histogram
from artsim.describe.edges import edge_density_grid
from artsim.describe.registry import describe_array
from artsim.describe.run import describe_manifests, describe_to_parquet
from artsim.describe.table import Descriptors, ImageEntry, read_descriptors
from artsim.describe.texture import HARALICK_FEATURES, haralick_texture
from artsim.params import DescribeParams

REPO = Path(__file__).resolve().parents[2]
PARAMS = DescribeParams()


def describe_stream(
    entries, params, out_dir: Path, workers: int = 1, cache_root=None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """describe_to_parquet, read back: (descriptor table, skipped table)."""
    describe_to_parquet(entries, params, out_dir, cache_root, workers=workers)
    return pd.read_parquet(out_dir / "descriptors.parquet"), pd.read_csv(out_dir / "skipped.csv")


def random_image(seed: int, size: tuple[int, int] = (48, 64)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def save_jpeg(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="JPEG", quality=95)


def test_descriptor_lengths_follow_params():
    params = DescribeParams(hsv_bins=(8, 3, 2), edge_grid=5)
    desc = describe_array(random_image(0), params)
    assert desc.color.shape == (8 * 3 * 2,)
    assert desc.texture.shape == (HARALICK_FEATURES,)
    assert desc.edges.shape == (25,)
    assert desc.color.sum() == pytest.approx(1.0, abs=1e-12)
    assert (desc.edges >= 0).all() and (desc.edges <= 1).all()


def test_hue_lands_in_its_opencv_bin():
    # OpenCV hue is 0-180: pure blue is H=120, i.e. bin 120/180*16 = 10.67 -> 10 of 16.
    blue = np.zeros((20, 20, 3), np.uint8)
    blue[..., 2] = 255
    red = np.zeros((20, 20, 3), np.uint8)
    red[..., 0] = 255

    def hue_mass(rgb):
        return color_histogram(rgb, (16, 4, 4)).reshape(16, 4, 4).sum(axis=(1, 2))

    assert hue_mass(blue).argmax() == 10
    assert hue_mass(red).argmax() == 0
    assert hue_mass(blue).max() == pytest.approx(1.0)


def test_uniform_image_gives_finite_descriptors():
    flat = np.full((64, 64, 3), 127, np.uint8)
    desc = describe_array(flat, PARAMS)
    assert np.isfinite(desc.texture).all()
    assert not desc.edges.any()
    assert desc.color.max() == pytest.approx(1.0)


@pytest.mark.parametrize("shape", [(1, 40), (40, 1), (2, 2)])
def test_degenerate_shapes_do_not_crash(shape):
    desc = describe_array(random_image(1, shape), DescribeParams(edge_grid=8))
    assert np.isfinite(desc.texture).all()
    assert np.isfinite(desc.edges).all()


def test_haralick_reacts_to_texture():
    rng = np.random.default_rng(3)
    smooth = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (64, 1))
    noisy = rng.integers(0, 256, (64, 64)).astype(np.uint8)
    contrast = 1  # Haralick feature 2: contrast, large for noise, tiny for a gradient
    assert haralick_texture(noisy, 32)[contrast] > 50 * haralick_texture(smooth, 32)[contrast]


def test_edge_grid_locates_edges_in_normalised_coordinates():
    for height, width in [(64, 64), (120, 200)]:
        edges = np.zeros((height, width), bool)
        edges[:, width // 8] = True  # a vertical line in the leftmost quarter
        grid = edge_density_grid(edges, 4).reshape(4, 4)
        assert (grid[:, 0] > 0).all()
        assert not grid[:, 1:].any()


def test_grid_cells_split_any_size_into_near_equal_row_major_cells():
    """The one grid of the edge, lab and orientation descriptors and the difference maps."""
    for height, width, grid in [(64, 64, 4), (7, 13, 4), (4, 9, 4), (200, 120, 8)]:
        cells = cell_index(height, width, grid).reshape(height, width)
        counts = np.bincount(cells.ravel(), minlength=grid * grid)
        assert counts.min() > 0 and len(counts) == grid * grid  # no empty cell once both sides reach grid
        assert counts.max() <= (-(-height // grid)) * (-(-width // grid))  # cells differ by at most a pixel row/column
        assert cells[0, 0] == 0 and cells[0, -1] == grid - 1 and cells[-1, 0] == grid * (grid - 1)
    values = np.arange(4 * 6 * 2, dtype=np.float64).reshape(4, 6, 2)
    np.testing.assert_array_equal(cell_means(values, 2)[0, 1], values[:2, 3:].reshape(-1, 2).mean(0))


def test_edge_descriptor_tells_where_edges_are():
    left = np.zeros((128, 128, 3), np.uint8)
    left[:, 20:40] = 255
    right = left[:, ::-1].copy()
    grid_left = describe_array(left, PARAMS).edges.reshape(PARAMS.edge_grid, PARAMS.edge_grid)
    grid_right = describe_array(right, PARAMS).edges.reshape(PARAMS.edge_grid, PARAMS.edge_grid)
    assert grid_left.sum() == pytest.approx(grid_right.sum(), rel=0.05)
    assert grid_left[:, : PARAMS.edge_grid // 2].sum() > 0 and not grid_left[:, PARAMS.edge_grid // 2 :].any()
    assert grid_right[:, PARAMS.edge_grid // 2 :].sum() > 0 and not grid_right[:, : PARAMS.edge_grid // 2].any()


def test_describe_is_deterministic_and_roundtrips_parquet(tmp_path):
    entries = [ImageEntry(f"img{i}", "original", tmp_path / f"{i}.jpg") for i in range(3)]
    for i, entry in enumerate(entries):
        save_jpeg(random_image(i, (40 + 10 * i, 60)), entry.path)
    describe_stream(entries, PARAMS, tmp_path / "out")
    loaded = read_descriptors(tmp_path / "out" / "descriptors.parquet")
    assert list(loaded.ids) == ["img0", "img1", "img2"]
    for entry in entries:
        direct = describe_array(read_rgb_array(entry.path, long_side=PARAMS.size), PARAMS)
        for name in ("color", "texture", "edges"):
            assert np.array_equal(getattr(loaded.image(entry.id), name), getattr(direct, name))


def make_broken_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    garbage = folder / "garbage.jpg"
    garbage.write_bytes(b"this is not an image at all" * 10)
    good = folder / "good.jpg"
    save_jpeg(random_image(7, (64, 64)), good)
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:400])
    return {"garbage": garbage, "truncated": truncated, "missing": folder / "missing.jpg"}


@pytest.mark.parametrize("workers", [1, 2])
def test_stream_skips_bad_files_with_their_reason(tmp_path, workers):
    broken = make_broken_files(tmp_path / "bad")
    good = [ImageEntry(f"good{i}", "generated", tmp_path / f"good{i}.jpg") for i in range(3)]
    for i, entry in enumerate(good):
        save_jpeg(random_image(10 + i), entry.path)
    entries = [good[0], *(ImageEntry(k, "original", p) for k, p in broken.items()), *good[1:]]
    table, skipped = describe_stream(entries, PARAMS, tmp_path / "out", workers=workers)
    assert list(table["id"]) == ["good0", "good1", "good2"]
    assert set(table["role"]) == {"generated"}
    reasons = dict(zip(skipped["id"], skipped["reason"]))
    assert reasons == {"garbage": "not_an_image", "truncated": "corrupt_image", "missing": "missing_file"}
    if workers > 1:
        serial, _ = describe_stream(entries, PARAMS, tmp_path / "serial", workers=1)
        assert all(
            np.array_equal(a, b) for col in ("color", "texture", "edges") for a, b in zip(serial[col], table[col])
        )


def write_fake_dataset(root: Path) -> None:
    """A tiny data/ingested + data/generated with one corrupt original and one corrupt variant."""
    ingested, generated = root / "data" / "ingested", root / "data" / "generated"
    originals = []
    for i in range(3):
        save_jpeg(random_image(20 + i, (80, 120)), ingested / "images" / f"orig{i}.jpg")
        originals.append({"id": f"orig{i}", "path": f"images/orig{i}.jpg", "split": "train"})
    (ingested / "images" / "orig3.jpg").write_bytes(b"\xff\xd8\xff\xe0 corrupt jpeg")
    originals.append({"id": "orig3", "path": "images/orig3.jpg", "split": "test"})
    variants = []
    for i in range(3):
        save_jpeg(random_image(30 + i, (60, 90)), generated / "images" / f"var{i}.jpg")
        variants.append({"id": f"var{i}", "original_id": f"orig{i}", "path": f"images/var{i}.jpg", "strength": 0.5})
    variants.append({"id": "var9", "original_id": "orig0", "path": "images/does-not-exist.jpg", "strength": 0.75})
    pd.DataFrame(originals).to_parquet(ingested / "manifest.parquet")
    pd.DataFrame(variants).to_parquet(generated / "manifest.parquet")


def test_describe_manifests_covers_both_roles(tmp_path):
    write_fake_dataset(tmp_path)
    describe_manifests(tmp_path / "data/ingested", tmp_path / "data/generated", PARAMS, tmp_path / "out")
    table, skipped = pd.read_parquet(tmp_path / "out/descriptors.parquet"), pd.read_csv(tmp_path / "out/skipped.csv")
    assert table.set_index("id")["role"].to_dict() == {
        "orig0": "original", "orig1": "original", "orig2": "original",
        "var0": "generated", "var1": "generated", "var2": "generated",
    }
    assert set(skipped["id"]) == {"orig3", "var9"}


def test_stage_reports_corrupt_image_and_writes_the_rest(tmp_path, monkeypatch):
    from stages import describe as describe_stage

    write_fake_dataset(tmp_path)
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    describe_stage.main()
    out = tmp_path / "data" / "descriptors"
    table = pd.read_parquet(out / "descriptors.parquet")
    skipped = pd.read_csv(out / "skipped.csv")
    assert sorted(table["id"]) == ["orig0", "orig1", "orig2", "var0", "var1", "var2"]
    assert set(table.columns) >= {"id", "role", "color", "texture", "edges"}
    assert dict(zip(skipped["id"], skipped["reason"])) == {"orig3": "corrupt_image", "var9": "missing_file"}
    assert skipped.loc[skipped["id"] == "orig3", "path"].item().endswith("orig3.jpg")
    assert all(len(v) == 16 * 4 * 4 for v in table["color"])


def test_empty_skip_list_still_has_a_header(tmp_path):
    entry = ImageEntry("only", "original", tmp_path / "only.jpg")
    save_jpeg(random_image(5), entry.path)
    describe_stream([entry], PARAMS, tmp_path / "out")
    assert (tmp_path / "out" / "skipped.csv").read_text().splitlines() == ["id,path,reason,detail"]
    assert isinstance(read_descriptors(tmp_path / "out" / "descriptors.parquet").image("only"), Descriptors)
