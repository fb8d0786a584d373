"""artsim.export.dataset: the workspace as a Hugging Face dataset that `datasets` loads offline (eagerly
and streaming), with a card whose counts are the data's; deterministic, bounded shards, the edge cases."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from artsim.core import layout
from artsim.core.errors import UserError
from artsim.export import ShardLimits, export_dataset
from tests.support.export_workspace import (
    LICENCE,
    ORPHAN,
    REPO_ROOT,
    build_workspace,
    built_and_exported,
    read_card,
    stored_images,
)


@pytest.fixture(scope="module")
def hf_datasets(tmp_path_factory: pytest.TempPathFactory):
    """`datasets`, offline, its caches under a temporary folder."""
    home = tmp_path_factory.mktemp("hf-home")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(home),
                            "HF_DATASETS_CACHE": str(home / "datasets")}.items():
            patch.setenv(name, value)
        import datasets

        patch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
        yield datasets


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return built_and_exported(tmp_path_factory.mktemp("export"))


def _load(hf_datasets, out: Path, config: str, tmp_path: Path):
    return hf_datasets.load_dataset(str(out), config, cache_dir=str(tmp_path / "cache"))


# --- the dataset -------------------------------------------------------------------------------

def test_datasets_loads_every_config_with_its_splits_and_the_stored_images(hf_datasets, exported, tmp_path):
    workspace, out = exported
    originals = _load(hf_datasets, out, "originals", tmp_path)
    assert {split: len(rows) for split, rows in originals.items()} == {"train": 3, "validation": 1, "test": 2}
    assert isinstance(originals["train"].features["image"], hf_datasets.Image)
    first = originals["train"][0]
    assert first["id"] == "o0" and first["image"].size == (24, 20) and first["license"] == LICENCE
    stored = stored_images(workspace, layout.INGESTED)
    raw = originals.cast_column("image", hf_datasets.Image(decode=False))
    assert {row["id"]: row["image"]["bytes"] for split in raw.values() for row in split} == stored

    variants = _load(hf_datasets, out, "variants", tmp_path)
    # Each variant sits in its original's split; o5 has none, the orphan is left out.
    assert {split: len(rows) for split, rows in variants.items()} == {"train": 6, "validation": 2, "test": 2}
    assert ORPHAN not in {row["id"] for split in variants.values() for row in split}
    raw = variants.cast_column("image", hf_datasets.Image(decode=False))
    stored = stored_images(workspace, layout.GENERATED)
    assert all(row["image"]["bytes"] == stored[row["id"]] for split in raw.values() for row in split)

    pairs = _load(hf_datasets, out, "pairs", tmp_path)
    assert {split: len(rows) for split, rows in pairs.items()} == {"train": 6, "validation": 2, "test": 2}
    assert set(pairs["train"].column_names) >= {"original_id", "generated_id", "positive", "color", "score"}


def test_streaming_reads_the_shards_as_they_come(hf_datasets, exported):
    _, out = exported
    files = {split: sorted(str(path) for path in (out / "variants").glob(f"{split}-*.parquet"))
             for split in ("train", "test")}
    streamed = hf_datasets.load_dataset("parquet", data_files=files, streaming=True)
    rows = list(streamed["train"])
    assert len(rows) == 6 and rows[0]["image"].convert("RGB").size == (24, 20)
    assert sum(1 for _ in streamed["test"]) == 2


def test_the_card_counts_are_the_data_and_it_names_the_run(hf_datasets, exported, tmp_path):
    _, out = exported
    header, body = read_card(out)
    assert [c["config_name"] for c in header["configs"]] == ["originals", "variants", "pairs"]
    for info in header["dataset_info"]:
        loaded = _load(hf_datasets, out, info["config_name"], tmp_path)
        card_counts = {split["name"]: split["num_examples"] for split in info["splits"]}
        assert card_counts == {split: len(rows) for split, rows in loaded.items()}
        assert [f["name"] for f in info["features"]] == loaded["train"].column_names
    assert "| originals | 3 | 1 | 2 | 6 |" in body
    assert "| sdxl | org/model | abc123 | 10 |" in body  # backend, model and its revision, from the variants' rows
    assert "generate.backend: sdxl" in body and "ingest.source: src" in body  # the run's params, from dvc.lock
    assert f"| a museum | {LICENCE} | 6 |" in body
    assert "| variants | original_not_exported | 1 |" in body and "| pairs | image_not_exported | 1 |" in body
    assert "@misc{artsim_export" in body


def test_the_same_workspace_gives_the_same_bytes(exported, tmp_path):
    workspace, first = exported
    export_dataset(workspace, tmp_path / "again")
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*") if p.is_file())
    assert all((first / f).read_bytes() == (tmp_path / "again" / f).read_bytes() for f in files)


def test_shards_and_row_groups_stay_within_their_limits(hf_datasets, exported, tmp_path):
    workspace, _ = exported
    export_dataset(workspace, tmp_path / "small", limits=ShardLimits(rows_per_group=2, rows_per_shard=3))
    shards = sorted(p.name for p in (tmp_path / "small/variants").glob("train-*.parquet"))
    assert shards == ["train-00000-of-00002.parquet", "train-00001-of-00002.parquet"]
    groups = [pq.ParquetFile(tmp_path / "small/variants" / name).metadata for name in shards]
    assert all(g.row_group(i).num_rows <= 2 for g in groups for i in range(g.num_row_groups))
    assert len(_load(hf_datasets, tmp_path / "small", "variants", tmp_path)["train"]) == 6


def test_a_workspace_without_variants_exports_its_originals(hf_datasets, tmp_path):
    workspace = build_workspace(tmp_path / "ws", with_variants=False)
    export_dataset(workspace, tmp_path / "out")
    assert hf_datasets.get_dataset_config_names(str(tmp_path / "out")) == ["originals"]
    assert sum(len(rows) for rows in _load(hf_datasets, tmp_path / "out", "originals", tmp_path).values()) == 6
    header, body = read_card(tmp_path / "out")
    assert [c["config_name"] for c in header["configs"]] == ["originals"]
    assert "This workspace has no generated variants." in body and "| variants | 0 | 0 | 0 | 0 |" in body
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["README.md", "originals"]


def test_zero_images_give_a_card_and_no_data_files(tmp_path):
    workspace = build_workspace(tmp_path / "ws", originals=[], with_variants=False)
    report = export_dataset(workspace, tmp_path / "out")
    assert all(exported.count() == 0 for exported in report.configs.values())
    assert not list((tmp_path / "out").rglob("*.parquet"))
    header, body = read_card(tmp_path / "out")
    assert header["configs"] == [] and "| originals | 0 | 0 | 0 | 0 |" in body


def test_an_unreadable_original_is_left_out_with_its_variants_and_pairs(hf_datasets, tmp_path):
    workspace = build_workspace(tmp_path / "ws")
    manifest = pd.read_parquet(workspace / layout.INGESTED / layout.MANIFEST)
    manifest.loc[manifest["id"] == "o3", "length"] += 1  # the manifest no longer matches the shard
    manifest.to_parquet(workspace / layout.INGESTED / layout.MANIFEST)
    report = export_dataset(workspace, tmp_path / "out")
    assert ("originals", "o3", "shard_mismatch") in {(s.table, s.id, s.reason) for s in report.skipped}
    # o3 was the only validation painting: its split goes, in every config, and the rest stays.
    for config, train in (("originals", 3), ("variants", 6), ("pairs", 6)):
        loaded = _load(hf_datasets, tmp_path / "out", config, tmp_path)
        assert set(loaded) == {"train", "test"} and len(loaded["train"]) == train
    body = read_card(tmp_path / "out")[1]
    assert "| originals | shard_mismatch | 1 |" in body and "| variants | original_not_exported | 3 |" in body


def test_an_id_named_twice_is_exported_once(tmp_path):
    workspace = build_workspace(tmp_path / "ws", with_variants=False)
    path = workspace / layout.INGESTED / layout.MANIFEST
    manifest = pd.read_parquet(path)
    pd.concat([manifest, manifest[manifest["id"] == "o0"].assign(split="test")]).to_parquet(path)
    report = export_dataset(workspace, tmp_path / "out")
    assert [(s.id, s.reason) for s in report.skipped] == [("o0", "duplicate_id")]
    assert report.configs["originals"].count() == 6


def test_the_user_page_states_the_shard_limits_in_force():
    page = (REPO_ROOT / "docs/dataset.md").read_text(encoding="utf-8")
    limits = ShardLimits()
    stated = (f"{limits.rows_per_shard:,} rows or {limits.bytes_per_shard >> 20} MB", f"{limits.rows_per_group} rows")
    assert all(text in " ".join(page.split()) for text in stated)




def test_a_damaged_manifest_stops_the_export_before_any_image_and_leaves_nothing(tmp_path):
    workspace = build_workspace(tmp_path / "ws")
    path = workspace / layout.GENERATED / layout.MANIFEST
    pd.read_parquet(path).assign(shard="../../elsewhere.tar").to_parquet(path)
    with pytest.raises(UserError, match="outside its folder"):
        export_dataset(workspace, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ws"]  # no export, no staging folder left
