"""ResNet-50 models, their weights on disk, and the transforms of the images they are fed.

Weights are always written as safetensors and read without unpickling untrusted data:
the only `torch.load` here runs with `weights_only=True`, for user-supplied .pth files
and torchvision's own ImageNet checkpoint.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torchvision.models import ResNet, ResNet50_Weights, resnet50
from torchvision.transforms import v2

from artsim.core.images import ImageRejected, load_rgb
from artsim.learn.distance_head import DistanceHead

log = logging.getLogger(__name__)

ARCH = "torchvision.models.resnet50"
IMAGENET_WEIGHTS = ResNet50_Weights.IMAGENET1K_V2
# The ImageNet statistics are kept even when training from scratch, so that a model
# trained here and one started from ImageNet take identically normalised inputs.
NORMALISATION = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
EMBEDDING_DIM = 2048
CLASSIFIER_HEAD_PREFIX = "fc."


class WeightsUnavailable(FileNotFoundError):
    """Requested initial weights are not on disk; nothing is ever downloaded."""


# ---------------------------------------------------------------------------
# Initial weights for the classifier
# ---------------------------------------------------------------------------

def imagenet_checkpoint_path() -> Path:
    """Where torchvision caches the ImageNet ResNet-50 checkpoint (honours TORCH_HOME)."""
    file_name = IMAGENET_WEIGHTS.url.rsplit("/", 1)[-1]
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """A state dict from .safetensors, or from .pth/.pt restricted to tensors (no code execution)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_file(path)
    if path.suffix in (".pth", ".pt"):
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
            raise ValueError(f"{path} is not a plain state dict (a mapping of parameter names to tensors)")
        return dict(state)
    raise ValueError(f"{path}: unsupported weights file type {path.suffix!r}; use .safetensors, .pth or .pt")


def initial_weights(spec: str) -> dict[str, Tensor] | None:
    """Resolve `finetune.weights` ('none' | 'imagenet' | a file) to a state dict, before any training."""
    if spec == "none":
        return None
    if spec == "imagenet":
        checkpoint = imagenet_checkpoint_path()
        if not checkpoint.is_file():
            raise WeightsUnavailable(
                f"finetune.weights=imagenet needs torchvision's {IMAGENET_WEIGHTS} checkpoint at {checkpoint} "
                f"(nothing is downloaded at run time). Place the file from {IMAGENET_WEIGHTS.url} there "
                "(or point TORCH_HOME at a folder holding hub/checkpoints/), or set `finetune.weights: none`."
            )
        return read_state_dict(checkpoint)
    return read_state_dict(Path(spec))


def load_backbone_state(model: nn.Module, state: Mapping[str, Tensor]) -> None:
    """Load `state` into `model`, dropping classifier-head keys whose shapes do not fit.

    Anything else missing or unexpected is an error: a silently half-loaded trunk would
    train as if from scratch without anyone noticing.
    """
    own = model.state_dict()
    # DistributedDataParallel checkpoints prefix every key with "module.".
    state = {k.removeprefix("module."): v for k, v in state.items()}
    kept = {k: v for k, v in state.items() if not (k.startswith(CLASSIFIER_HEAD_PREFIX) and _shape_differs(own, k, v))}
    dropped = sorted(set(state) - set(kept))
    if dropped:
        log.info("dropping classifier-head weights whose shape differs: %s", ", ".join(dropped))
    result = model.load_state_dict(kept, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(CLASSIFIER_HEAD_PREFIX)]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"weights do not fit a ResNet-50: missing {missing[:5]}, unexpected {result.unexpected_keys[:5]}"
        )


def _shape_differs(own: Mapping[str, Tensor], key: str, value: Tensor) -> bool:
    return key not in own or own[key].shape != value.shape


def build_classifier(num_classes: int, initial_state: Mapping[str, Tensor] | None = None) -> ResNet:
    """A ResNet-50 with a `num_classes`-way fc, optionally started from `initial_state`."""
    model = resnet50(weights=None, num_classes=num_classes)
    if initial_state is not None:
        load_backbone_state(model, initial_state)
    return model


# ---------------------------------------------------------------------------
# Siamese regressor
# ---------------------------------------------------------------------------

class SiameseRegressor(nn.Module):
    """f(a, b) in [0, 1], f(a, a) == 1: one shared ResNet-50 trunk, a DistanceHead on the pair's
    embeddings (a learned floor from [|ea - eb|, ea * eb], lifted to 1 as |ea - eb| -> 0).

    Each image goes through the trunk on its own and the head's features are symmetric, so
    f(a, b) == f(b, a) bit for bit, and an image with itself scores 1 by construction
    (artsim.learn.distance_head).
    """

    def __init__(self, head_hidden: int) -> None:
        super().__init__()
        self.trunk = resnet50(weights=None)
        self.trunk.fc = nn.Identity()
        self.head = DistanceHead(EMBEDDING_DIM, head_hidden)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return self.score_embeddings(self.trunk(a), self.trunk(b))

    def embed(self, images: Tensor) -> Tensor:
        """The embeddings the head compares, of a batch of normalised images."""
        return self.trunk(images)

    def score_embeddings(self, ea: Tensor, eb: Tensor) -> Tensor:
        """f(a, b) from trunk embeddings computed elsewhere (e.g. once per unique image)."""
        return self.head(ea, eb)

    def start_at(self, score: float) -> None:
        """The mean baseline: every pair of different images scores `score`."""
        self.head.start_at(score)


def siamese_from_classifier(weights_path: Path, head_hidden: int) -> SiameseRegressor:
    """A siamese model whose trunk is the fine-tuned classifier's (its fc is dropped)."""
    model = SiameseRegressor(head_hidden)
    state = {k: v for k, v in load_file(weights_path).items() if not k.startswith(CLASSIFIER_HEAD_PREFIX)}
    model.trunk.load_state_dict(state, strict=True)
    return model


def save_weights(model: nn.Module, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, path)


def load_siamese(path: Path, head_hidden: int) -> SiameseRegressor:
    """A trained siamese model from safetensors, in eval mode."""
    model = SiameseRegressor(head_hidden)
    model.load_state_dict(load_file(path), strict=True)
    return model.eval()


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------

def to_normalised_tensor() -> list[nn.Module]:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(**NORMALISATION)]


def classifier_train_transform(image_size: int) -> v2.Compose:
    # Light augmentation only: style lives in colour and brushwork, which colour jitter would erase.
    return v2.Compose([
        v2.ToImage(),
        v2.RandomResizedCrop(image_size, scale=(0.5, 1.0), antialias=True),
        v2.RandomHorizontalFlip(),
        *to_normalised_tensor(),
    ])


def classifier_eval_transform(image_size: int) -> v2.Compose:
    return v2.Compose([
        v2.ToImage(),
        v2.Resize(image_size, antialias=True),
        v2.CenterCrop(image_size),
        *to_normalised_tensor(),
    ])


def pair_resize(image_size: int) -> v2.Compose:
    # A plain (aspect-distorting) resize keeps the whole picture, which is what the
    # descriptor score was computed on; a crop would hide part of what it measured.
    return v2.Compose([v2.ToImage(), v2.Resize((image_size, image_size), antialias=True)])


def pair_transform(image_size: int) -> v2.Compose:
    """A pair's image as the siamese model takes it: resized as pair_resize, then normalised."""
    return v2.Compose([pair_resize(image_size), *to_normalised_tensor()])


def screen_images(paths: Iterable[Path]) -> dict[Path, str]:
    """Decode each distinct image once; return the unusable ones with the reason."""
    rejected: dict[Path, str] = {}
    for path in dict.fromkeys(paths):
        try:
            load_rgb(path)
        except ImageRejected as exc:
            log.warning("skipping %s: %s", path, exc)
            rejected[path] = exc.reason
    return rejected


def drop_rejected(batch: list[Any]) -> Any:
    """Collate only the samples that decoded; a file that broke after screening costs one sample."""
    present = [sample for sample in batch if sample is not None]
    if not present:
        return None
    return torch.utils.data.default_collate(present)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
