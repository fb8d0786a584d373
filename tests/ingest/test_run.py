import contextlib
import io
import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from artsim.core.images import content_hash, load_rgb
from artsim.core.shards import manifest_images
from artsim.ingest.run import IngestSettings, assign_split, ingest, read_manifest
from artsim.ingest.sources.formats import labels_from_path, read_folder
from artsim.params import ParamsError, parse_params
from tests.support.helpers import REPO_ROOT, random_painting


def run_ingest(source: Path, out: Path, **overrides) -> tuple[pd.DataFrame, dict]:
    settings = IngestSettings(**overrides)
    report = ingest(read_folder(source), out, settings)
    manifest = read_manifest(out)
    return manifest, {**report.as_metrics(), "skipped_by_reason": report.skipped_by_reason}


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
    for row, image in zip(manifest.itertuples(), manifest_images(manifest, tmp_path / "out")):
        with Image.open(io.BytesIO(image.read_bytes())) as img:
            assert img.format == "JPEG" and img.mode == "RGB"
            assert max(img.size) == 200  # shrunk to fit, never below it (reduced-scale JPEG decoding)
            assert img.size == (row.width, row.height)


def test_labels_come_from_the_path_without_metadata(sample_copy, tmp_path):
    (sample_copy / "metadata.csv").unlink()
    manifest, _ = run_ingest(sample_copy, tmp_path / "out")
    row = manifest.set_index("source_path").loc["Ukiyo_e/katsushika-hokusai_the-great-wave-off-kanagawa-1831.jpg"]
    assert (row["artist"], row["style"], row["year"], row["genre"]) == (
        "Katsushika Hokusai",
        "Ukiyo_e",
        "1831",
        "unknown",
    )
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
    shards = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.tar"))
    assert shards and all((tmp_path / "a" / s).read_bytes() == (tmp_path / "b" / s).read_bytes() for s in shards)


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
    from stages import ingest as ingest_stage

    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    # test_fraction 0.4: a subset of 10 then leaves no split empty (the stage refuses an empty train or test)
    params["ingest"].update(source=str(sample_copy), max_images=10, workers=2, test_fraction=0.4)
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


# --- files that are not what their name says: FIFOs, folders, huge files -------------------------

class Hung(BaseException):
    """Not an Exception (nor an OSError, as TimeoutError is): no `except` in the code under test swallows it."""


@contextlib.contextmanager
def fails_after(seconds: float):
    """Turn a hang (e.g. open() on a FIFO blocking forever) into a test failure."""
    def on_alarm(signum, frame):
        raise Hung(f"still running after {seconds} s")
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_fifo_folder_and_huge_sparse_file_are_skipped_unread(tmp_path):
    source = tmp_path / "src" / "Style"
    source.mkdir(parents=True)
    random_painting(1).save(source / "good.png")
    os.mkfifo(source / "pipe.jpg")  # opening it for reading would block until a writer comes
    (source / "folder.jpg").mkdir()
    with open(source / "huge.jpg", "wb") as handle:
        handle.truncate(3 * 1024**3)  # 3 GB, sparse: reading it would cost 3 GB of memory
    with fails_after(20):
        manifest, metrics = run_ingest(tmp_path / "src", tmp_path / "out")
    skipped = pd.read_csv(tmp_path / "out/skipped.csv").set_index("source_path")
    assert skipped["reason"].to_dict() == {
        "Style/folder.jpg": "not_a_regular_file",
        "Style/huge.jpg": "file_too_large",
        "Style/pipe.jpg": "not_a_regular_file",
    }
    assert "FIFO" in skipped.loc["Style/pipe.jpg", "detail"]
    assert list(manifest["source_path"]) == ["Style/good.png"]


def test_max_file_bytes_is_the_limit(tmp_path):
    source = tmp_path / "src" / "Style"
    source.mkdir(parents=True)
    random_painting(1).save(source / "small.png")
    random_painting(2, size=(400, 300)).save(source / "large.png")
    limit = (source / "large.png").stat().st_size - 1
    manifest, metrics = run_ingest(tmp_path / "src", tmp_path / "out", max_file_bytes=limit)
    assert metrics["skipped_by_reason"] == {"file_too_large": 1}
    assert list(manifest["source_path"]) == ["Style/small.png"]


@pytest.mark.parametrize("value", [0, -1])
def test_max_file_bytes_must_be_positive(value):
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["ingest"]["max_file_bytes"] = value
    with pytest.raises(ParamsError, match=r"ingest\.max_file_bytes: Input should be greater than or equal to 1"):
        parse_params(params)


# --- a crash leaves no manifest -------------------------------------------------------------------

def test_an_ingest_that_crashes_midway_leaves_no_manifest(sample_dir, tmp_path):
    def items_then_crash():
        for number, item in enumerate(read_folder(sample_dir)):
            if number == 5:
                raise RuntimeError("disk on fire")
            yield item
    with pytest.raises(RuntimeError, match="disk on fire"):
        ingest(items_then_crash(), tmp_path / "out", IngestSettings())
    assert not (tmp_path / "out/manifest.parquet").exists()
    assert not (tmp_path / "out/skipped.csv").exists()
    assert not list((tmp_path / "out").glob(".*partial"))  # nor any leftover half-file


# --- the stage: seeds, and datasets the later stages could not use ---------------------------------

def run_stage(tmp_path: Path, monkeypatch, seed: int = 42, **ingest_params) -> pd.DataFrame:
    from stages import ingest as ingest_stage

    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["seed"] = seed
    params["ingest"].update(workers=1, **ingest_params)
    workspace = tmp_path / f"workspace-{len(list(tmp_path.glob('workspace-*')))}"
    workspace.mkdir()
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(workspace)
    ingest_stage.main()
    return pd.read_parquet(workspace / "data/ingested/manifest.parquet").set_index("id")


def test_the_training_seed_does_not_move_images_between_splits_but_split_seed_does(sample_dir, tmp_path, monkeypatch):
    source = str(sample_dir)
    baseline = run_stage(tmp_path, monkeypatch, seed=42, source=source)
    other_seed = run_stage(tmp_path, monkeypatch, seed=1, source=source)
    pd.testing.assert_series_equal(baseline["split"], other_seed["split"])
    other_split_seed = run_stage(tmp_path, monkeypatch, seed=42, source=source, split_seed=1)
    assert (baseline["split"] != other_split_seed["split"].reindex(baseline.index)).any()


def test_the_ingest_stage_reruns_on_ingest_params_not_on_the_training_seed():
    stage = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]["ingest"]
    assert "seed" not in stage["params"]
    assert {"ingest", "ingest.split_seed"} & set(stage["params"])


def test_stage_fails_in_one_line_when_nothing_is_kept(tmp_path, monkeypatch):
    source = tmp_path / "src" / "Style"
    source.mkdir(parents=True)
    (source / "notes.jpg").write_text("not a picture")
    (source / "empty.png").write_bytes(b"")
    with pytest.raises(SystemExit) as failure:
        run_stage(tmp_path, monkeypatch, source=str(tmp_path / "src"))
    message = str(failure.value)
    assert "\n" not in message and "no image kept" in message and f"ingest.source={tmp_path / 'src'}" in message
    assert "empty_file 1" in message and "not_an_image 1" in message
    workspace = next(tmp_path.glob("workspace-*"))
    assert json.loads((workspace / "metrics/ingest.json").read_text())["skipped"] == 2
    assert len(pd.read_csv(workspace / "data/ingested/skipped.csv")) == 2


@pytest.mark.parametrize(
    "prescribed, empty, advice", [("test", "train", "ingest.val_fraction"), ("train", "test", "ingest.split: hash")]
)
def test_stage_fails_when_a_split_the_later_stages_need_is_empty(
    sample_copy, tmp_path, monkeypatch, prescribed, empty, advice
):
    metadata = pd.read_csv(sample_copy / "metadata.csv")
    metadata["split"] = prescribed
    metadata.to_csv(sample_copy / "metadata.csv", index=False)
    with pytest.raises(SystemExit) as failure:
        run_stage(tmp_path, monkeypatch, source=str(sample_copy), split="from_source")
    message = str(failure.value)
    assert "\n" not in message and f"no kept image is in the {empty} split" in message and advice in message


def load_rgb_that_dies_on_poppies(data, **kwargs):
    if content_hash(data) == POPPIES_HASH:
        os._exit(1)  # as a segfault in a C decoder would: the worker process is gone
    return load_rgb(data, **kwargs)


POPPIES = "Ukiyo_e/katsushika-hokusai_poppies-1833.jpg"
POPPIES_HASH = content_hash((REPO_ROOT / "data/sample" / POPPIES).read_bytes())


def test_a_decoder_that_kills_its_worker_costs_only_that_image(sample_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("artsim.ingest.run.load_rgb", load_rgb_that_dies_on_poppies)  # workers fork after this
    manifest, metrics = run_ingest(sample_dir, tmp_path / "out", workers=2)
    assert metrics["kept"] == 28 and metrics["skipped_by_reason"] == {"decoder_crashed": 1}
    assert POPPIES not in set(manifest["source_path"])
