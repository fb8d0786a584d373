from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from artsim.generate import StyleTransferBackend, choose_style_sources, generate, plan_variants
from artsim.ingest import IngestSettings, ingest, scan_folder


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> tuple[pd.DataFrame, Path]:
    from tests.helpers import SAMPLE_DIR

    out = tmp_path_factory.mktemp("ingested")
    manifest, _ = ingest(scan_folder(SAMPLE_DIR), out, IngestSettings(max_side=256))
    return manifest, out


@pytest.fixture(scope="module")
def backend() -> StyleTransferBackend:
    return StyleTransferBackend(max_side=128)


def test_style_source_is_another_painting_and_does_not_depend_on_order():
    ids = [f"{i:016x}" for i in range(1, 50)]
    chosen = choose_style_sources(ids, seed=7)
    assert all(chosen[i] != i and chosen[i] in ids for i in ids)
    assert chosen == choose_style_sources(list(reversed(ids)), seed=7)
    assert chosen != choose_style_sources(ids, seed=8)


def test_variant_keys_change_with_everything_that_determines_them(ingested):
    manifest, _ = ingested
    base = plan_variants(manifest, [0.5], "style_transfer", "magenta-arbitrary", seed=1, max_side=128)
    keys = {r.key for r in base}
    assert len(keys) == len(manifest)
    for changed in (
        plan_variants(manifest, [0.6], "style_transfer", "magenta-arbitrary", seed=1, max_side=128),
        plan_variants(manifest, [0.5], "style_transfer", "magenta-arbitrary", seed=2, max_side=128),
        plan_variants(manifest, [0.5], "style_transfer", "magenta-arbitrary", seed=1, max_side=256),
    ):
        assert keys.isdisjoint({r.key for r in changed})


def distance_from_original(original: Image.Image, variant: Image.Image) -> float:
    reference = np.asarray(original.resize(variant.size, Image.Resampling.BICUBIC), dtype=np.float64)
    return float(np.abs(reference - np.asarray(variant, dtype=np.float64)).mean())


def test_strength_moves_the_variant_monotonically_away_from_the_original(ingested, backend):
    manifest, root = ingested
    rows = manifest.iloc[:6]
    for row in rows.itertuples():
        original = Image.open(root / row.path).convert("RGB")
        style_row = manifest.iloc[(row.Index + 7) % len(manifest)]
        style = Image.open(root / style_row["path"]).convert("RGB")
        distances = [distance_from_original(original, backend.render(original, style, s)) for s in (0.1, 0.4, 0.7, 1.0)]
        assert distances == sorted(distances), (row.title, distances)
        assert distances[-1] > distances[0] + 5


def test_generation_is_deterministic_and_reports_a_broken_original(ingested, backend, tmp_path):
    manifest, root = ingested
    subset = manifest.iloc[:4]
    requests = plan_variants(subset, [0.3, 0.8], "style_transfer", "magenta-arbitrary", seed=3, max_side=128)
    paths = dict(zip(subset["id"], subset["path"]))
    first, report = generate(requests, root, paths, tmp_path / "a", backend)
    second, _ = generate(requests, root, paths, tmp_path / "b", backend)
    assert report.generated == 8 and not report.failed
    pd.testing.assert_frame_equal(first, second)
    for path in first["path"]:
        assert (tmp_path / "a" / path).read_bytes() == (tmp_path / "b" / path).read_bytes()

    broken = tmp_path / "broken"
    broken.mkdir()
    for image_id, path in paths.items():
        (broken / Path(path).name).write_bytes((root / path).read_bytes())
    broken_id = subset["id"].iloc[0]
    (broken / Path(paths[broken_id]).name).write_bytes(b"\xff\xd8 not really a jpeg")
    flat_paths = {image_id: Path(path).name for image_id, path in paths.items()}
    manifest_out, report = generate(requests, broken, flat_paths, tmp_path / "c", backend)
    # the broken painting fails as an original (2 strengths) and as a style source of others
    assert report.failed["not_an_image"] >= 2
    assert report.generated == 8 - sum(report.failed.values()) and report.generated > 0
    assert broken_id not in set(manifest_out["original_id"])
