"""A siamese model started from a published copy detector instead of the fine-tuned classifier.

SSCD (facebookresearch/sscd-copy-detection) publishes its ResNet-50 descriptors as torchvision state
dicts (`sscd_disc_mixup.torchvision.pt`, a plain state dict that `torch.load(..., weights_only=True)`
reads without running code): the torchvision ResNet-50 under "backbone.", with its avgpool replaced
by GeM (p = 3, no weights) and its fc the linear projection 2048 -> 512, the output L2 normalised.
That is the siamese model's trunk and projection (artsim.learn.models), so both load as they are.
docs/training-at-scale.md, "A copy-detection start" says how a user gets and places the file.
"""
from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from artsim.learn.models import CLASSIFIER_HEAD_PREFIX, DEFAULT_EMBEDDING_DIM, SiameseRegressor

COPY_DETECTOR_PREFIX = "backbone."


def siamese_from_copy_detector(state: Mapping[str, Tensor], head_hidden: int,
                               embedding_dim: int | None = DEFAULT_EMBEDDING_DIM) -> SiameseRegressor:
    """A siamese model whose trunk, and projection where the state has one, are a published copy
    detector's (SSCD's torchvision layout, COPY_DETECTOR_PREFIX): its ResNet-50 under "backbone.",
    its fc the projection. A projection of another width than `embedding_dim` is an error, not
    silently dropped; a state without fc leaves the projection freshly initialised.
    """
    model = SiameseRegressor(head_hidden, embedding_dim)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    foreign = sorted(k for k in state if not k.startswith(COPY_DETECTOR_PREFIX))
    if foreign:
        raise ValueError(f"not a copy detector's state dict in SSCD's torchvision layout (keys under "
                         f"{COPY_DETECTOR_PREFIX!r}): unexpected {foreign[:5]}")
    backbone = {k.removeprefix(COPY_DETECTOR_PREFIX): v for k, v in state.items()}
    fc = {k.removeprefix(CLASSIFIER_HEAD_PREFIX): v for k, v in backbone.items()
          if k.startswith(CLASSIFIER_HEAD_PREFIX)}
    trunk = {k: v for k, v in backbone.items() if not k.startswith(CLASSIFIER_HEAD_PREFIX)}
    result = model.trunk.load_state_dict(trunk, strict=False)
    # Only BatchNorm's step counters may be absent (they decide nothing in eval or with momentum set).
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise ValueError(f"the copy detector's backbone does not fit a ResNet-50: missing {missing[:5]}, "
                         f"unexpected {result.unexpected_keys[:5]}")
    if fc:
        _load_projection(model, fc)
    return model


def _load_projection(model: SiameseRegressor, fc: Mapping[str, Tensor]) -> None:
    expected = {name: tuple(value.shape) for name, value in model.projection.state_dict().items()}
    given = {name: tuple(value.shape) for name, value in fc.items()}
    if given != expected:
        raise ValueError(
            f"the copy detector's projection ({COPY_DETECTOR_PREFIX}fc: {given}) does not fit "
            f"siamese.embedding_dim {model.embedding_dim} ({expected or 'no projection'}): set "
            f"siamese.embedding_dim to {given.get('weight', (None,))[0]}")
    model.projection.load_state_dict(fc, strict=True)
