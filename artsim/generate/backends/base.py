"""The contract between the run loop and a generation backend."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Hashable, Protocol, Sequence, Union

from PIL import Image


class InputError(ValueError):
    """The data or machine does not fit the params (a prompt field the manifest lacks, fp16
    without a GPU); raised before any work, naming the key."""


@dataclass(frozen=True)
class ItemFailure:
    """One variant could not be made; `reason` is a short, countable code."""

    reason: str
    detail: str = ""


@dataclass(frozen=True)
class AdoptedFile:
    """A finished JPEG that is already a file (the import backend's): `data` is what `path` held
    when it was checked. The store links the file instead of copying it, where it can."""

    path: Path
    data: bytes


# What a backend returns per variant: pixels (stored as JPEG), finished JPEG bytes or an
# adopted JPEG file (stored as they are), or why it failed without failing the rest of its batch.
Output = Union[Image.Image, bytes, AdoptedFile, ItemFailure]


class Backend(Protocol):
    def load(self, variant: Any) -> Any:
        """The inputs of one variant (raises ImageRejected for an unusable original)."""

    def batch_group(self, variant: Any) -> Hashable:
        """Variants in one batch must agree on this (e.g. image size and strength)."""

    def render(self, variants: Sequence[Any], inputs: Sequence[Any]) -> list[Output]:
        """Make a batch; an exception fails the whole batch (each variant is then retried alone)."""

    def recover(self) -> None:
        """Called after a failed batch, e.g. to release GPU memory before the retries."""
