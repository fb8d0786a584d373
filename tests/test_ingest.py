import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from artsim.ingest import IngestSettings, assign_split, ingest, read_manifest
from artsim.sources import labels_from_path, read_folder
from tests.helpers import REPO_ROOT, random_painting


def run_ingest(source: Path, out: Path, **overrides) -> tuple[pd.DataFrame, dict]:
    settings = IngestSettings(**overrides)
    report = ingest(read_folder(source), out, settings)
    manifest = read_manifest(out)
    return manifest, report.as_metrics()


def test_keeps_all_29_sample_paintings_with_their_metadata(sample_dir, tmp_path):
    manifest, metrics = run_ingest(sample_dir, tmp_path / "out")
    assert metrics["kept"] == 29 and metrics["skipped"] == 0
    assert len(manifest) == manifest["id"].nunique() == 29
    mona_lisa = manifest.set_index("title").loc["Mona Lisa"]
    assert (mona_lisa["style"], mona_lisa["genre"], mona_lisa["year"]) == ("High_Renaissance", "portrait", "1503")
    assert set(manifest["split"]) <= {"train", "val", "test"}
    assert sum(metrics["splits"].values()) == 29


def test_images_are_normalised_rgb_jpegs_within_max_side(sample_dir, tmp_path):
    manifest, _ = run_ingest(sample_dir, tmp_path / "out", max_side=200)
    for row in manifest.itertuples():
        with Image.open(tmp_path / "out" / row.path) as img:
            assert img.format == "JPEG" and img.mode == "RGB"
            assert max(img.size) == 200  # shrunk to fit, never below it (reduced-scale JPEG decoding)
            assert img.size == (row.width, row.height)


def test_labels_come_from_the_path_without_metadata(sample_copy, tmp_path):
    (sample_copy / "metadata.csv").unlink()
    manifest, _ = run_ingest(sample_copy, tmp_path / "out")
    row = manifest.set_index("source_path").loc["Ukiyo_e/katsushika-hokusai_the-great-wave-off-kanagawa-1831.jpg"]
    assert (row["artist"], row["style"], row["year"], row["genre"]) == ("Katsushika Hokusai", "Ukiyo_e", "1831", "unknown")
    assert row["title"] == "The Great Wave Off Kanagawa"


def test_path_labels_without_year():
    labels = labels_from_path("Ukiyo_e/utagawa-hiroshige_horse-mackerel-and-prawn.jpg")
    assert labels["year"] == "" and labels["title"] == "Horse Mackerel And Prawn"


def test_duplicate_content_is_kept_once_and_reported(sample_copy, tmp_path):
    original = sample_copy / "Ukiyo_e/katsushika-hokusai_poppies-1833.jpg"
    shutil.copy(original, sample_copy / "Ukiyo_e/copy-of-poppies.jpg")
    manifest, metrics = run_ingest(sample_copy, tmp_path / "out")
    assert metrics["kept"] == 29
    assert metrics["skipped_by_reason"] == {"duplicate": 1}


def test_bad_files_among_good_ones_are_skipped_with_a_reason(sample_copy, tmp_path):
    style_dir = sample_copy / "Impressionism"
    (style_dir / "empty.jpg").write_bytes(b"")
    (style_dir / "noise.jpg").write_bytes(np.random.default_rng(0).bytes(5000))
    (style_dir / "notes.png").write_text("this is not a picture")
    good = (sample_copy / "Ukiyo_e/katsushika-hokusai_poppies-1833.jpg").read_bytes()
    (style_dir / "truncated.jpg").write_bytes(good[: len(good) // 2])
    random_painting(1, size=(20, 10)).save(style_dir / "tiny.png")

    manifest, metrics = run_ingest(sample_copy, tmp_path / "out", min_side=32)

    assert metrics["kept"] == 29
    assert metrics["skipped_by_reason"] == {"empty_file": 1, "not_an_image": 2, "corrupt_image": 1, "too_small": 1}
    kept_impressionism = manifest[manifest["source_path"].str.startswith("Impressionism/")]
    assert len(kept_impressionism) == 4


def test_decompression_bomb_is_rejected_from_its_header(tmp_path):
    source = tmp_path / "src" / "Style"
    source.mkdir(parents=True)
    Image.new("L", (4000, 3000)).save(source / "bomb.png")
    random_painting(2).save(source / "good.png")
    manifest, metrics = run_ingest(tmp_path / "src", tmp_path / "out", max_pixels=1_000_000)
    assert metrics["skipped_by_reason"] == {"too_many_pixels": 1}
    assert list(manifest["source_path"]) == ["Style/good.png"]


def test_ingest_is_deterministic(sample_dir, tmp_path):
    first, _ = run_ingest(sample_dir, tmp_path / "a")
    second, _ = run_ingest(sample_dir, tmp_path / "b")
    pd.testing.assert_frame_equal(first, second)
    for path in first["path"]:
        assert (tmp_path / "a" / path).read_bytes() == (tmp_path / "b" / path).read_bytes()


def test_adding_images_never_moves_an_existing_image_to_another_split(sample_copy, tmp_path):
    before, _ = run_ingest(sample_copy, tmp_path / "before")
    for seed in range(40):
        random_painting(seed).save(sample_copy / "Impressionism" / f"new-painting-{seed}.png")
    after, metrics = run_ingest(sample_copy, tmp_path / "after")
    assert metrics["kept"] == 29 + 40
    merged = before.merge(after, on="id", suffixes=("_before", "_after"))
    assert len(merged) == 29
    assert (merged["split_before"] == merged["split_after"]).all()


def test_split_fractions_are_respected_on_many_images():
    rng = np.random.default_rng(0)
    splits = pd.Series([assign_split(rng.bytes(32).hex(), 42, 0.15, 0.2) for _ in range(20_000)])
    shares = splits.value_counts(normalize=True)
    assert shares["test"] == pytest.approx(0.2, abs=0.01)
    assert shares["val"] == pytest.approx(0.15, abs=0.01)
    assert shares["train"] == pytest.approx(0.65, abs=0.01)


def test_stage_takes_a_stratified_subset_and_writes_its_reports(sample_copy, tmp_path, monkeypatch):
    import yaml

    from stages import ingest as ingest_stage

    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["ingest"].update(source=str(sample_copy), max_images=10, workers=2)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    ingest_stage.main()

    manifest = pd.read_parquet(tmp_path / "data/ingested/manifest.parquet")
    assert len(manifest) == 10
    # proportional to the sample's styles: 9 Ukiyo_e and 9 Post_Impressionism of 29
    assert manifest["style"].value_counts()[["Ukiyo_e", "Post_Impressionism"]].tolist() == [3, 3]
    metrics = json.loads((tmp_path / "metrics/ingest.json").read_text())
    assert metrics["kept"] == 10 and metrics["skipped"] == 0
    assert pd.read_csv(tmp_path / "data/ingested/skipped.csv").empty
