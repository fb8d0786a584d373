"""What determines a variant, and the key and seed derived from it.

A key is a hash over a variant's *recipe*: every input that changes its pixels (original
content hash, backend, model at its hub revision, prompt, strength, steps, guidance, seed, resolution, VAE,
dtype, JPEG quality). Whatever only says how to run (batch size, device, processes) stays
out, so that a rerun with other settings reuses finished work. The key names the stored
file and the manifest row, and seeds the variant's own noise.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

# Bumped when the meaning of a recipe changes (e.g. a new resize rule), so old store
# entries are not mistaken for new ones.
KEY_VERSION = 1
KEY_LENGTH = 16
# A local model folder is fingerprinted from its config files and from this many evenly
# spaced samples of each weight file: hashing whole multi-GB weights on every run would cost
# more than the check is worth, and retrained weights differ everywhere.
WEIGHT_SAMPLES = 16
SAMPLE_BYTES = 64 * 1024


@dataclass(frozen=True)
class Variant:
    """One variant to make: its key, what the backend needs to make it, and what the manifest records."""

    key: str
    original_id: str
    strength: float
    backend: str
    model: str
    seed: int  # the seed this variant's noise is drawn from
    prompt: str = ""
    negative_prompt: str = ""
    style_source_id: str = ""
    source: str = ""  # import: the adopted file, relative to generate.import_dir
    source_hash: str = ""  # import: its sha256 when planned (load refuses a file changed since)
    size: tuple[int, int] | None = None  # sdxl: (width, height) the original is resized to


def variant_key(recipe: Mapping[str, Any]) -> str:
    """A stable hex key for a recipe (a flat mapping of JSON values)."""
    canonical = json.dumps(
        {"key_version": KEY_VERSION, **recipe}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:KEY_LENGTH]


def variant_seed(key: str) -> int:
    """The seed of one variant, from its key alone.

    Every variant draws its noise from its own generator seeded by this, so its pixels do
    not depend on which other variants share its batch, its process or its machine.
    """
    return int(hashlib.sha256(f"seed|{key}".encode()).hexdigest()[:15], 16)


def weights_identity(name: str | None, revision: str | None = None) -> str | None:
    """What identifies a model for keys: a hub id at its revision, a local folder by a fingerprint.

    A hub id alone names whatever its repository holds today, so its revision (a commit, or
    a branch that moves) is part of it. The fingerprint, not the path, keys a folder (whose
    revision means nothing): moving it keeps its variants, changing its weights or configs does not.
    """
    if name is None:
        return None
    folder = Path(name)
    if not folder.is_dir():
        return f"{name}@{revision}" if revision else name
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        relative = path.relative_to(folder).as_posix()
        size = path.stat().st_size
        digest.update(f"{relative}|{size}|".encode())
        with open(path, "rb") as handle:
            if path.suffix in (".json", ".txt", ".model") or size <= WEIGHT_SAMPLES * SAMPLE_BYTES:
                digest.update(handle.read())
                continue
            for index in range(WEIGHT_SAMPLES):
                handle.seek((size - SAMPLE_BYTES) * index // (WEIGHT_SAMPLES - 1))
                digest.update(handle.read(SAMPLE_BYTES))
    return f"folder:{digest.hexdigest()[:16]}"
