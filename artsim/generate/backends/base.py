"""The contract between the run loop and a generation backend.

A `Backend` is what the registry (`artsim.generate.backends.BACKENDS`) names: its own checks
of the params and of the ingested data, its planner (one `Plan` shape for all) and how to open
its `Renderer`, the object the run loop feeds batches to.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Hashable, Mapping, Protocol, Sequence, Union

from PIL import Image

from artsim.generate.variants import Variant

if TYPE_CHECKING:  # types only: the backends take these, they never import them at run time
    import pandas as pd

    from artsim.core.distributed import Ranks
    from artsim.core.images import ImageFile
    from artsim.params import GenerateParams


class InputError(ValueError):
    """The data or machine does not fit the params (a prompt field the manifest lacks, fp16
    without a GPU); raised before any work, naming the key."""


@dataclass(frozen=True)
class ItemFailure:
    """One variant could not be made; `reason` is a short, countable code."""

    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Failure:
    """A variant (or an original, when `key` is empty: it could not be planned) that was not made, and why."""

    key: str
    original_id: str
    strength: float
    reason: str
    detail: str = ""


@dataclass
class Plan:
    """What a backend's planner returns: every variant the params ask for, the originals that
    have no variant to make (import: no file found), and what could not be planned, with why."""

    variants: list[Variant]
    unmatched: list[str] = field(default_factory=list)
    unplanned: list[Failure] = field(default_factory=list)


@dataclass(frozen=True)
class AdoptedFile:
    """A finished JPEG that is already a file (the import backend's): `data` is what `path` held
    when it was checked. The store links the file instead of copying it, where it can."""

    path: Path
    data: bytes


# What a backend returns per variant: pixels (stored as JPEG), finished JPEG bytes or an
# adopted JPEG file (stored as they are), or why it failed without failing the rest of its batch.
Output = Union[Image.Image, bytes, AdoptedFile, ItemFailure]

# A params problem a backend finds: (key within the generate block, what is wrong).
ParamsProblem = tuple[str, str]


class Renderer(Protocol):
    def load(self, variant: Any) -> Any:
        """The inputs of one variant (raises ImageRejected for an unusable original)."""

    def batch_group(self, variant: Any) -> Hashable:
        """Variants in one batch must agree on this (e.g. image size and strength)."""

    def render(self, variants: Sequence[Any], inputs: Sequence[Any]) -> list[Output]:
        """Make a batch; an exception fails the whole batch (each variant is then retried alone)."""

    def recover(self) -> None:
        """Called after a failed batch, e.g. to release GPU memory before the retries."""


class Backend(Protocol):
    """One entry of the registry; `name` is its `generate.backend` value."""

    name: str

    def check_params(self, config: GenerateParams) -> list[ParamsProblem]:
        """What is wrong with the params for this backend (none: an empty list); no data read."""

    def check_inputs(self, config: GenerateParams, originals: pd.DataFrame) -> None:
        """What params validation cannot know before the data is there; raises InputError naming the key."""

    def open(self, config: GenerateParams, originals: Mapping[str, ImageFile], ranks: Ranks) -> Renderer:
        """The renderer of this run (loads a model where there is one)."""

    def plan(self, config: GenerateParams, originals: pd.DataFrame, seed: int, renderer: Renderer) -> Plan:
        """Every variant the params ask for, in a stable order."""
