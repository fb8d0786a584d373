"""Finished variants, one JPEG per key, kept outside every DVC output.

DVC deletes a stage's outputs before it runs the stage, so work kept there would be lost to
a crash or a widened sweep; the store survives both, and `data/generated` is assembled from
it by hard links (a copy where links are impossible). A file appears under its final name
only once it is complete (write to a temporary name, fsync, rename), so a killed process
never leaves a partial image that a later run would take as done, and ranks on several
machines may share one store on a shared filesystem.
"""
from __future__ import annotations

import errno
import io
import logging
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Iterable

from PIL import Image

log = logging.getLogger(__name__)

TEMP_PREFIX = ".tmp-"
# A temporary file older than this belongs to a killed process (one write takes well under
# a second), and can go; younger ones may be another rank's write in progress.
STALE_TEMP_SECONDS = 3600


class VariantStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        # Two-character fan-out keeps folders small with hundreds of thousands of variants.
        return self.root / key[:2] / f"{key}.jpg"

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def present(self, keys: Iterable[str]) -> set[str]:
        return {key for key in keys if self.has(key)}

    def put_image(self, key: str, image: Image.Image, jpeg_quality: int) -> Path:
        buffer = io.BytesIO()
        # optimize=False and no EXIF/ICC: the same pixels always give the same bytes.
        image.save(buffer, format="JPEG", quality=jpeg_quality, optimize=False)
        return self.put_bytes(key, buffer.getvalue())

    def put_bytes(self, key: str, data: bytes) -> Path:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f"{TEMP_PREFIX}{socket.gethostname()}-{os.getpid()}-", suffix=".jpg")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                # Without fsync a power cut can leave the renamed file empty.
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return target

    def link_into(self, key: str, target: Path) -> None:
        """Make `target` hold the stored variant: a hard link, else an atomic copy."""
        source = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        try:
            os.link(source, target)
            return
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
                raise
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=TEMP_PREFIX, suffix=".jpg")
        os.close(fd)
        try:
            shutil.copyfile(source, temporary)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def remove_stale_temporaries(self, older_than_s: float = STALE_TEMP_SECONDS) -> int:
        """Delete what killed writers left behind; returns how many files went."""
        if not self.root.is_dir():
            return 0
        cutoff = time.time() - older_than_s
        removed = 0
        for path in self.root.glob(f"*/{TEMP_PREFIX}*"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                pass  # another rank removed it first
        if removed:
            log.info("removed %d stale temporary files from %s", removed, self.root)
        return removed
