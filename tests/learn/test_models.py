"""The ResNet-50 models: weight sources, the siamese head's symmetry, safetensors I/O."""
from __future__ import annotations

import pickle
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import save_file
from torchvision.models import resnet50

from artsim.learn.models import (
    SiameseRegressor,
    WeightsUnavailable,
    build_classifier,
    imagenet_checkpoint_path,
    initial_weights,
    load_siamese,
    save_weights,
    siamese_from_classifier,
)
from artsim.learn.pair_images import resolve_pairs

IMAGENET_FILE = "resnet50-11ad3fa6.pth"


def _images(seed: int, n: int = 3, size: int = 32) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _trained_looking_siamese(seed: int = 0) -> SiameseRegressor:
    """A siamese model whose head scores pairs apart (calibrated on random pairs), not the constant baseline."""
    torch.manual_seed(seed)
    model = SiameseRegressor(head_hidden=8)
    with torch.no_grad():
        model.eval()
        model.head.calibrate(model.embed(_images(10, n=6)), model.embed(_images(11, n=6)), 0.4)
        torch.nn.init.normal_(model.head.output_logits, std=0.5)
    return model


@pytest.mark.parametrize("training", [False, True])
def test_siamese_is_exactly_symmetric_with_outputs_in_unit_interval(training: bool) -> None:
    model = _trained_looking_siamese().train(training)
    a, b = _images(1), _images(2)
    with torch.no_grad():
        # Calibrated in the mode it runs in (training mode normalises by the batch's statistics).
        model.head.calibrate(model.embed(a), model.embed(b), 0.4)
        ab, ba = model(a, b), model(b, a)
    assert ab.shape == (3,)
    assert torch.equal(ab, ba)
    assert bool(((ab > 0) & (ab < 1)).all())
    # Not trivially symmetric because constant: different pairs score differently.
    assert not torch.allclose(ab, ab[0].expand(3))


def test_siamese_trunk_is_one_shared_parameter_set() -> None:
    model = SiameseRegressor(head_hidden=8)
    trunk = resnet50(weights=None)
    trunk_size = sum(p.numel() for name, p in trunk.named_parameters() if not name.startswith("fc."))
    head_size = sum(p.numel() for p in model.head.parameters())
    projection_size = 2048 * 512 + 512
    assert sum(p.numel() for p in model.parameters()) == trunk_size + projection_size + head_size
    # Both inputs go through the very same module: changing it moves both embeddings.
    a = _images(3, n=2)
    model.eval()
    with torch.no_grad():
        before = model.embed(a)
        model.trunk.conv1.weight.mul_(2.0)
        assert not torch.equal(model.embed(a), before)


def test_start_at_predicts_that_score_for_every_pair_of_different_images() -> None:
    model = SiameseRegressor(head_hidden=8).eval()
    model.start_at(0.37)
    a = _images(4)
    with torch.no_grad():
        out, same = model(a, _images(5)), model(a, a)
    assert torch.allclose(out, torch.full((3,), 0.37), atol=1e-6)
    assert torch.allclose(same, torch.ones(3), atol=1e-6)


def test_calibrated_head_starts_at_the_mean_for_the_median_pair_and_varies() -> None:
    model = _trained_looking_siamese()
    torch.nn.init.zeros_(model.head.output_logits)
    with torch.no_grad():
        ea, eb = model.embed(_images(10, n=6)), model.embed(_images(11, n=6))
        model.head.calibrate(ea, eb, 0.4)
        scores = model.score_embeddings(ea, eb)
    assert float((scores - 0.4).abs().min()) < 1e-5  # the pair of median distance
    assert float(scores.std()) > 1e-3
    floors = model.head.floor(ea, eb)  # constant at the start, below the mean: the distance lifts it
    assert torch.allclose(floors, floors[0].expand(6)) and 0.0 < float(floors[0]) < 0.4


def test_safetensors_round_trip_is_exact_and_never_unpickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _trained_looking_siamese(seed=1).eval()
    path = tmp_path / "model.safetensors"
    save_weights(model, path)

    def refuse(*args, **kwargs):
        raise AssertionError("loading weights must not unpickle")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    loaded = load_siamese(path, head_hidden=8)

    a, b = _images(6), _images(7)
    with torch.no_grad():
        assert torch.equal(loaded(a, b), model(a, b))


def test_siamese_trunk_comes_from_the_classifier_without_its_fc(tmp_path: Path) -> None:
    classifier = build_classifier(num_classes=5)
    torch.nn.init.constant_(classifier.layer4[2].conv3.weight, 0.25)
    save_weights(classifier, tmp_path / "finetune.safetensors")
    model = siamese_from_classifier(tmp_path / "finetune.safetensors", head_hidden=8)
    assert torch.equal(model.trunk.layer4[2].conv3.weight, classifier.layer4[2].conv3.weight)
    assert isinstance(model.trunk.fc, torch.nn.Identity)


def _marked_resnet50_state() -> dict[str, torch.Tensor]:
    state = resnet50(weights=None).state_dict()
    state["conv1.weight"] = torch.full_like(state["conv1.weight"], 0.5)
    return state


def test_imagenet_weights_come_from_torchvision_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    checkpoint = tmp_path / "hub" / "checkpoints" / IMAGENET_FILE
    assert imagenet_checkpoint_path() == checkpoint
    checkpoint.parent.mkdir(parents=True)
    torch.save(_marked_resnet50_state(), checkpoint)

    model = build_classifier(num_classes=3, initial_state=initial_weights("imagenet"))
    assert bool((model.conv1.weight == 0.5).all())
    assert model.fc.out_features == 3


def test_missing_imagenet_weights_fail_naming_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsUnavailable) as failure:
        initial_weights("imagenet")
    message = str(failure.value)
    assert str(tmp_path / "hub" / "checkpoints" / IMAGENET_FILE) in message
    assert "finetune.weights: none" in message
    assert not (tmp_path / "hub" / "checkpoints" / IMAGENET_FILE).exists()


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_weights_from_a_file_drop_an_fc_of_another_shape(tmp_path: Path, suffix: str) -> None:
    state = _marked_resnet50_state()
    path = tmp_path / f"weights{suffix}"
    save_file(state, path) if suffix == ".safetensors" else torch.save(state, path)
    model = build_classifier(num_classes=4, initial_state=initial_weights(str(path)))
    assert bool((model.conv1.weight == 0.5).all())
    assert model.fc.weight.shape == (4, 2048)


def test_weights_that_are_not_a_resnet50_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    save_file({"encoder.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(ValueError, match="do not fit a ResNet-50"):
        build_classifier(num_classes=2, initial_state=initial_weights(str(path)))


def test_resolve_pairs_finds_both_images_and_drops_unknown_ids(tmp_path: Path) -> None:
    ingested = pd.DataFrame({"id": ["o1", "o2"], "path": ["images/o1.jpg", "images/o2.jpg"]})
    generated = pd.DataFrame({"id": ["g1"], "path": ["images/g1.jpg"]})
    pairs = pd.DataFrame({
        "pair_id": ["p1", "p2", "p3"],
        "original_id": ["o1", "o2", "o3"],
        "generated_id": ["g1", "g1", "g1"],
        "score": [0.5, 0.4, 0.3],
    })
    resolved = resolve_pairs(pairs, ingested, generated, tmp_path / "ing", tmp_path / "gen")
    assert list(resolved["pair_id"]) == ["p1", "p2"]
    assert resolved.loc[1, "original_path"] == tmp_path / "ing" / "images" / "o2.jpg"
    assert resolved.loc[0, "generated_path"] == tmp_path / "gen" / "images" / "g1.jpg"
