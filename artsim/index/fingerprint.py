"""What identifies a model's embeddings: its weights' bytes and the input size it embeds at.

Two models with one fingerprint embed every image alike, so an index keyed by it can be reused;
any other fingerprint means every vector is computed again (the content hashes and pHashes stay).
"""
from __future__ import annotations

import hashlib
from pathlib import Path


def model_fingerprint(weights_file: Path, image_size: int) -> str:
    digest = hashlib.sha256(f"image_size={int(image_size)};".encode())
    with open(weights_file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
