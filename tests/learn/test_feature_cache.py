"""The two caches outside DVC (the variant store, the feature cache) check what they find:
a damaged entry is logged, deleted, made again and counted; the feature cache's key holds
everything that can change a feature."""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torchvision.models import resnet50

from artsim.core.shards import ShardMember, ShardWriter, manifest_images
from artsim.generate.assemble import assemble, run_tallies
from artsim.generate.run import generate
from artsim.generate.store import VariantStore
from artsim.learn.feature_cache import FeatureStore, cache_features, feature_key, open_feature_store
from artsim.learn.features import split_trunk
from artsim.learn.models import NORMALISATION, build_classifier, save_weights
from artsim.learn.training import Runtime
from artsim.params import GenerateParams, SiameseParams
from artsim.siamese.batches import PairTable
from artsim.siamese.train import prepare_inputs, train_siamese
from tests.support.generate_fixtures import decodes, make_ingested
from tests.support.tiny_project import build_tiny_project, resolved_pairs

CPU = Runtime(torch.device("cpu"))


# --- the variant store ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> tuple[pd.DataFrame, Path]:
    root = tmp_path_factory.mktemp("ingested")
    # Large enough that a stored variant is well over the 10 KB it is cut to below.
    return make_ingested(root, count=3, sizes=[(320, 240)]), root


def _generate(ingested, store: Path):
    manifest, root = ingested
    return generate(manifest, root, GenerateParams(strengths=[0.5], max_side=256, store=store), seed=3)


@pytest.mark.parametrize("cut_to", [10_000, 600])
def test_a_truncated_stored_variant_is_made_again_and_counted(ingested, tmp_path: Path, cut_to: int) -> None:
    first = _generate(ingested, tmp_path / "store")
    store = VariantStore(tmp_path / "store")
    damaged = store.path(first.variants[0].key)
    whole = damaged.read_bytes()
    assert len(whole) > 12_000
    damaged.write_bytes(whole[:cut_to])

    healed = _generate(ingested, tmp_path / "store")
    assert (healed.computed, healed.reused) == (1, len(first.variants) - 1)
    assert damaged.read_bytes() == whole  # made again, byte for byte
    manifest = assemble(healed, store, tmp_path / "generated")  # the 600-byte cut used to crash here
    assert len(manifest) == len(first.variants) and not healed.failures
    assert all(decodes(image) for image in manifest_images(manifest, tmp_path / "generated"))
    assert healed.healed == 1 and "1 damaged store entries made again" in run_tallies(healed)

    clean = _generate(ingested, tmp_path / "store")
    assert (clean.healed, clean.computed, clean.reused) == (0, 0, len(first.variants))


def test_a_store_written_without_checksums_is_adopted_where_it_decodes(ingested, tmp_path: Path) -> None:
    first = _generate(ingested, tmp_path / "store")
    store = VariantStore(tmp_path / "store")
    for variant in first.variants:
        store.checksum_path(variant.key).unlink()
    truncated = store.path(first.variants[1].key)
    truncated.write_bytes(truncated.read_bytes()[:10_000])
    again = _generate(ingested, tmp_path / "store")
    assert (again.healed, again.computed, again.reused) == (1, 1, len(first.variants) - 1)
    assert all(store.checksum_path(v.key).is_file() for v in first.variants)


def test_a_variant_damaged_after_the_check_is_reported_not_fatal(ingested, tmp_path: Path) -> None:
    result = _generate(ingested, tmp_path / "store")
    store = VariantStore(tmp_path / "store")
    victim = result.variants[0]
    store.path(victim.key).write_bytes(store.path(victim.key).read_bytes()[:600])
    manifest = assemble(result, store, tmp_path / "generated")
    assert victim.key not in set(manifest["id"]) and len(manifest) == len(result.variants) - 1
    assert [(f.key, f.reason) for f in result.failures] == [(victim.key, "damaged_in_store")]
    assert not store.has(victim.key)  # the next run makes it again


# --- the feature cache ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bottom() -> torch.nn.Module:
    torch.manual_seed(0)
    trunk = resnet50(weights=None)
    trunk.fc = torch.nn.Identity()
    return split_trunk(trunk, ["layer4"])[0]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    paths = build_tiny_project(tmp_path_factory.mktemp("tiny"))
    return sorted((paths["ingested"] / "images").glob("*.jpg"))[:4]


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def _wrong_dtype(path: Path) -> None:
    np.save(path, np.load(path).astype(np.float64))


def _wrong_shape(path: Path) -> None:
    np.save(path, np.load(path)[:, :1])


def test_an_image_that_cannot_be_read_is_rejected_and_the_rest_cached(
    bottom, images: list[Path], tmp_path: Path
) -> None:
    with ShardWriter(tmp_path / "shards") as shards:
        shard, offset, length = shards.add("images/a.jpg", images[0].read_bytes(), "aa")
    beyond = ShardMember(tmp_path / shard, offset, length + 10_000)  # a manifest longer than its shard
    store = open_feature_store(
        tmp_path / "features", bottom, 32, NORMALISATION, torch.device("cpu"), False, torch.float32
    )
    digests, rejected = cache_features(
        bottom, [beyond, tmp_path / "gone.jpg", *images[1:]], store, 32, 4, torch.device("cpu")
    )
    assert rejected == {beyond: "truncated_shard", tmp_path / "gone.jpg": "missing_file"}
    assert digests[:2] == ["", ""] and all(store.usable(d) for d in digests[2:])


@pytest.mark.parametrize("damage", [_empty, _truncated, _wrong_dtype, _wrong_shape])
def test_a_damaged_feature_file_is_computed_again_and_counted(
    bottom, images: list[Path], tmp_path: Path, damage
) -> None:
    store = open_feature_store(tmp_path, bottom, 32, NORMALISATION, torch.device("cpu"), False, torch.float32)
    digests, _ = cache_features(bottom, images, store, 32, 4, torch.device("cpu"))
    expected = store.load(digests[1]).clone()  # a copy: the damage rewrites the file it may map
    damage(store.path(digests[1]))

    store = open_feature_store(tmp_path, bottom, 32, NORMALISATION, torch.device("cpu"), False, torch.float32)
    _, rejected = cache_features(bottom, images, store, 32, 4, torch.device("cpu"))
    assert not rejected
    # alone, not in a batch of 4: another summation order (MKL_CBWR=COMPATIBLE), so not bit-equal
    assert torch.allclose(store.load(digests[1]), expected, rtol=1e-3, atol=1e-4)
    assert store.healed == 1
    stamps = [store.path(d).stat().st_mtime_ns for d in digests]

    store = open_feature_store(tmp_path, bottom, 32, NORMALISATION, torch.device("cpu"), False, torch.float32)
    cache_features(bottom, images, store, 32, 4, torch.device("cpu"))
    assert store.healed == 0 and [store.path(d).stat().st_mtime_ns for d in digests] == stamps


def test_a_damaged_feature_file_costs_no_pairs_in_training(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tiny = build_tiny_project(tmp_path / "tiny")
    weights = tmp_path / "trunk.safetensors"
    torch.manual_seed(0)
    save_weights(build_classifier(3), weights)
    params = SiameseParams(image_size=32, epochs=1, batch_size=6, head_hidden=8, train_layers=["layer4"],
                           feature_cache=tmp_path / "features")
    caplog.set_level(logging.INFO, logger="artsim.siamese.train")
    first = train_siamese(resolved_pairs(tiny), weights, params, 0, CPU).metrics
    cached = sorted((tmp_path / "features").rglob("*.npy"))
    whole = np.load(cached[0])
    cached[0].write_bytes(cached[0].read_bytes()[:200])  # header whole, data cut short
    second = train_siamese(resolved_pairs(tiny), weights, params, 0, CPU).metrics
    # computed again, not left out of training (alone, not in a batch: float noise differs by CPU)
    assert np.allclose(np.load(cached[0]), whole, rtol=1e-4, atol=1e-4)
    # The same pairs train the same model (up to float noise: the healed file was computed alone, not in a batch).
    assert (second["n_train_pairs"], second["n_val_pairs"], second["skipped_pairs"]) == (
        first["n_train_pairs"],
        first["n_val_pairs"],
        0,
    )
    assert second["val_mse"] == pytest.approx(first["val_mse"], rel=1e-4)
    healed = [int(n) for n in re.findall(r"(\d+) damaged cached features computed again", caplog.text)]
    assert healed == [0, 1]  # logged, not a metric: the same model on a machine whose cache was whole


def test_feature_files_are_fsynced(bottom, images: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    FeatureStore(tmp_path, "key").save("ab" * 32, torch.zeros(2, 3))
    assert synced


# --- what the feature cache is keyed by ------------------------------------------------------

def test_the_feature_key_changes_with_everything_that_can_change_features(
    bottom, monkeypatch: pytest.MonkeyPatch
) -> None:
    cpu = torch.device("cpu")
    base = feature_key(bottom, 32, NORMALISATION, cpu, False)
    assert feature_key(bottom, 32, NORMALISATION, cpu, False) == base
    others = {
        "image size": feature_key(bottom, 64, NORMALISATION, cpu, False),
        "device type": feature_key(bottom, 32, NORMALISATION, torch.device("cuda", 0), False),
        "channels_last": feature_key(bottom, 32, NORMALISATION, cpu, True),
    }
    for module, attribute in (
        (torch, "__version__"),
        (__import__("torchvision"), "__version__"),
        (__import__("PIL"), "__version__"),
    ):
        with monkeypatch.context() as patch:
            patch.setattr(module, attribute, "0.0.0-other")
            others[f"{module.__name__} version"] = feature_key(bottom, 32, NORMALISATION, cpu, False)
    assert base not in others.values(), [name for name, key in others.items() if key == base]
    # Precision decides the stored dtype, and with it the store's folder.
    folders = {
        FeatureStore(Path("root"), base, dtype).folder for dtype in (torch.float32, torch.float16, torch.bfloat16)
    }
    assert len(folders) == 3


def test_training_with_channels_last_uses_its_own_feature_cache(bottom, images: list[Path], tmp_path: Path) -> None:
    params = SiameseParams(image_size=32, feature_cache=tmp_path / "features")
    table = PairTable.from_pairs(
        pd.DataFrame({"original_path": images[:2], "generated_path": images[2:4], "score": [0.5, 0.5]})
    )
    folders = set()
    for channels_last in (False, True, False):
        inputs, _ = prepare_inputs(
            table.images, bottom, params, Runtime(torch.device("cpu"), channels_last=channels_last)
        )
        folders.add(inputs.inputs.store.folder)
    bottom.to(memory_format=torch.contiguous_format)
    assert len(folders) == 2 and all(folder.is_dir() for folder in folders)
