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
# The trunk's pooled width, and the compact embedding projected from it by default (as SSCD, the
# copy-detection descriptor: GeM p=3 over layer4, a linear projection to 512, L2 normalised).
POOLED_DIM = 2048
DEFAULT_EMBEDDING_DIM = 512
GEM_POWER = 3.0
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

class GeM(nn.Module):
    """Generalised-mean pooling over the spatial positions, (n, c, h, w) -> (n, c): the mean of x^p, to
    the 1/p. p > 1 weights the strongest activations more than average pooling does (p = 1)."""

    def __init__(self, power: float = GEM_POWER) -> None:
        super().__init__()
        self.power = power

    def forward(self, features: Tensor) -> Tensor:
        # In float32: cubes of activations overflow half precision.
        powered = features.float().clamp_min(1e-6).pow(self.power)
        return powered.mean(dim=(2, 3)).pow(1.0 / self.power)


class MirrorPairs(nn.Module):
    """`module` on each image and on its left-right mirror, in one batched pass: (n, ...) -> (n, 2, ...)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, images: Tensor) -> Tensor:
        outputs = self.module(torch.cat([images, images.flip(-1)]))
        return torch.stack([outputs[: len(images)], outputs[len(images):]], dim=1)


class SiameseRegressor(nn.Module):
    """f(a, b) in [0, 1], f(a, a) == 1: one shared ResNet-50 trunk, a DistanceHead on the pair's
    embeddings (a learned floor from [|ea - eb|, ea * eb], lifted to 1 as |ea - eb| -> 0).

    An image's embedding (embed) is the mean of the GeM-pooled trunk features of the image and of its
    left-right mirror, projected to `embedding_dim` (None: no projection, the 2048 pooled features)
    and L2 normalised. A mirror swaps the two halves of the mean and a sum of two is commutative in
    floating point, so an image and its mirror have the same embedding and score 1 with each other,
    whatever the weights. The head's features are symmetric, so f(a, b) == f(b, a) bit for bit, and
    an image with itself scores 1 by construction (artsim.learn.distance_head).
    """

    def __init__(self, head_hidden: int, embedding_dim: int | None = DEFAULT_EMBEDDING_DIM) -> None:
        super().__init__()
        self.trunk = resnet50(weights=None)
        self.trunk.avgpool = GeM()
        self.trunk.fc = nn.Identity()
        self.embedding_dim = embedding_dim or POOLED_DIM
        self.projection = nn.Identity() if embedding_dim is None else _projection(embedding_dim)
        self.head = DistanceHead(self.embedding_dim, head_hidden)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return self.score_embeddings(self.embed(a), self.embed(b))

    def embed(self, images: Tensor, top: nn.Module | None = None) -> Tensor:
        """The embeddings (n, embedding_dim) of normalised images (n, 3, h, w): the one way to get them.

        With `top`, the trained top of a split trunk (artsim.learn.features.split_trunk), `images` may
        instead be the frozen bottom's features of each image and its mirror, (n, 2, c, h, w), as
        MirrorPairs(bottom) gives them (what the feature cache holds).
        """
        top = self.trunk if top is None else top
        if images.dim() == 4:
            pooled = MirrorPairs(top)(images)
        else:
            pooled = top(images.flatten(0, 1)).unflatten(0, (len(images), 2))
        return self.embed_pooled(pooled)

    def embed_pooled(self, pooled: Tensor) -> Tensor:
        """Embeddings from the pooled trunk features of each image and its mirror, (n, 2, 2048)."""
        both = pooled[:, 0] + pooled[:, 1]  # one commutative sum: a mirror gives it bit for bit
        return nn.functional.normalize(self.projection(both / 2), dim=1)

    def score_embeddings(self, ea: Tensor, eb: Tensor) -> Tensor:
        """f(a, b) from embeddings computed elsewhere (e.g. once per unique image)."""
        return self.head(ea, eb)

    def start_at(self, score: float) -> None:
        """The mean baseline: every pair of different images scores `score`."""
        self.head.start_at(score)


class ImageEmbedding(nn.Module):
    """SiameseRegressor.embed as a module, for what runs modules over images (features.embed_images)."""

    def __init__(self, model: SiameseRegressor) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> Tensor:
        return self.model.embed(images)


def _projection(embedding_dim: int) -> nn.Linear:
    # Orthogonal rows: the projection starts as a rotation onto a subspace, keeping the pooled features'
    # distances as far as a narrower space can.
    projection = nn.Linear(POOLED_DIM, embedding_dim)
    nn.init.orthogonal_(projection.weight)
    nn.init.zeros_(projection.bias)
    return projection


def siamese_from_classifier(weights_path: Path, head_hidden: int,
                            embedding_dim: int | None = DEFAULT_EMBEDDING_DIM) -> SiameseRegressor:
    """A siamese model whose trunk is the fine-tuned classifier's (its fc is dropped)."""
    model = SiameseRegressor(head_hidden, embedding_dim)
    state = {k: v for k, v in load_file(weights_path).items() if not k.startswith(CLASSIFIER_HEAD_PREFIX)}
    model.trunk.load_state_dict(state, strict=True)
    return model


def save_weights(model: nn.Module, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, path)


def load_siamese(path: Path, head_hidden: int) -> SiameseRegressor:
    """A trained siamese model from safetensors, in eval mode; its embedding width is the one its
    weights were trained with (the projection's, or the pooled width where it has none)."""
    state = load_file(path)
    projection = state.get("projection.weight")
    model = SiameseRegressor(head_hidden, None if projection is None else int(projection.shape[0]))
    model.load_state_dict(state, strict=True)
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
