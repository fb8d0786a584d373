"""What a server admits: the limits of `artsim serve` (its options' defaults) and of each request.

Light on purpose: the `artsim` command reads these defaults for its options before anything heavy is imported.
"""
from __future__ import annotations

from dataclasses import dataclass

from artsim.core.images import MAX_FILE_BYTES
from artsim.params import IngestParams

# An upload is held in memory (and spooled) per admitted request: a web limit well under ingest's
# per-file 256 MiB, which is meant for a trusted batch read one file at a time.
DEFAULT_MAX_IMAGE_BYTES = min(MAX_FILE_BYTES, 32 * 1024 * 1024)


@dataclass(frozen=True)
class ServiceLimits:
    """Per request: bytes (checked from Content-Length, then while the body streams in) and pixels
    (from the image header, before decoding); per server: requests computing at once, and waiting."""

    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    max_pixels: int = IngestParams.model_fields["max_pixels"].default
    max_concurrent: int = 2
    max_queue: int = 8

    def __post_init__(self) -> None:
        for name in ("max_image_bytes", "max_pixels", "max_concurrent"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_queue < 0:
            raise ValueError(f"max_queue must be at least 0, got {self.max_queue}")

    @property
    def max_request_bytes(self) -> int:
        """Two images (POST /compare) and the multipart framing and small fields around them."""
        return 2 * self.max_image_bytes + 64 * 1024
