"""A siamese model started from a copy detector's state dict in SSCD's torchvision layout (built here with the
layout's key names and shapes; nothing is downloaded), and the params that name it."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file
from torchvision.models import resnet50

from artsim.learn.copy_detector import siamese_from_copy_detector
from artsim.learn.models import read_state_dict
from artsim.params import ParamsError, SiameseParams, parse_params
from artsim.siamese.train import starting_siamese


def _inputs() -> torch.Tensor:
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))


def _copy_detector_state(width: int = 512) -> dict[str, torch.Tensor]:
    """A state dict laid out as SSCD's torchvision release: a ResNet-50 with a `width`-way fc under "backbone."."""
    torch.manual_seed(11)
    state = resnet50(weights=None, num_classes=width).state_dict()
    state["conv1.weight"] = torch.full_like(state["conv1.weight"], 0.01)
    state["fc.weight"] = torch.randn_like(state["fc.weight"]) * 0.02
    state["fc.bias"] = torch.randn_like(state["fc.bias"])
    return {f"backbone.{name}": value for name, value in state.items()}


def _reference_descriptor(state: dict[str, torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """The copy detector's own descriptor, written out here: GeM p=3, fc, L2 norm, averaged over the mirror
    before the normalisation (the fc is linear, so averaging before or after it is the same)."""
    network = resnet50(weights=None, num_classes=state["backbone.fc.weight"].shape[0]).eval()
    network.load_state_dict({k.removeprefix("backbone."): v for k, v in state.items()})
    network.avgpool = _GeMReference()
    with torch.no_grad():
        both = network(images) + network(images.flip(-1))
    return torch.nn.functional.normalize(both / 2, dim=1)


class _GeMReference(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(min=1e-6).pow(3).mean(dim=(2, 3), keepdim=True).pow(1 / 3)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_the_copy_detector_file_starts_trunk_and_projection(tmp_path: Path, suffix: str) -> None:
    state = _copy_detector_state()
    path = tmp_path / f"sscd_disc_mixup.torchvision{suffix}"
    torch.save(state, path) if suffix == ".pt" else save_file(state, path)
    params = SiameseParams(head_hidden=8, embedding_dim=512, trunk_weights_file=path)
    model = starting_siamese(tmp_path / "no-classifier.safetensors", params).eval()
    assert bool((model.trunk.conv1.weight == 0.01).all())
    assert torch.equal(model.projection.weight, state["backbone.fc.weight"])
    images = _inputs()
    with torch.no_grad():
        assert torch.allclose(model.embed(images), _reference_descriptor(state, images), atol=1e-4)


def test_a_copy_detector_without_projection_loads_its_trunk_only() -> None:
    state = {k: v for k, v in _copy_detector_state().items() if not k.startswith("backbone.fc.")}
    model = siamese_from_copy_detector(state, head_hidden=4, embedding_dim=256)
    assert bool((model.trunk.conv1.weight == 0.01).all()) and model.projection.weight.shape == (256, 2048)


def test_a_copy_detector_of_another_width_or_layout_is_refused() -> None:
    with pytest.raises(ValueError, match="siamese.embedding_dim to 512"):
        siamese_from_copy_detector(_copy_detector_state(512), head_hidden=4, embedding_dim=256)
    with pytest.raises(ValueError, match="SSCD's torchvision layout"):
        siamese_from_copy_detector(resnet50(weights=None).state_dict(), head_hidden=4)
    broken = {k: v for k, v in _copy_detector_state().items() if not k.startswith("backbone.layer4.")}
    with pytest.raises(ValueError, match="does not fit a ResNet-50"):
        siamese_from_copy_detector(broken, head_hidden=4)


def test_a_pickle_with_code_is_not_run(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"backbone.conv1.weight": torch.zeros(1), "note": Path("x")}, path)
    with pytest.raises(Exception):  # weights_only refuses the non-tensor object
        read_state_dict(path)


def _with_siamese(**keys: object) -> dict:
    raw = yaml.safe_load((Path(__file__).resolve().parents[2] / "params.yaml").read_text(encoding="utf-8"))
    return {**raw, "siamese": {**raw["siamese"], **keys}}


def test_embedding_params_are_checked_naming_key_and_allowed_values(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match=r"siamese.embedding_dim[\s\S]*greater than or equal to 8"):
        parse_params(_with_siamese(embedding_dim=4))
    with pytest.raises(ParamsError, match=r"siamese.trunk_weights_file[\s\S]*inputs/none or an existing state dict"):
        parse_params(_with_siamese(trunk_weights_file=str(tmp_path / "absent.pt")))
    committed = parse_params(_with_siamese()).siamese
    assert committed.trunk_weights_file is None and committed.embedding_dim == 512
    assert parse_params(_with_siamese(embedding_dim=None)).siamese.embedding_dim is None
