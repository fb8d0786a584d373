"""Finished variants, one JPEG per key, kept outside every DVC output.

DVC deletes a stage's outputs before it runs the stage, so work kept there would be lost to
a crash or a widened sweep; the store survives both, and `data/generated` is packed from it
into shards (artsim.core.shards). The store is the user's, shared by every workspace and
experiment; an imported JPEG is a hard link to the imported file, not a copy. A file appears
under its final name only once it is complete (write to a temporary name, fsync, rename), so
a killed process never leaves a partial image that a later run would take as done, and ranks
on several machines may share one store on a shared filesystem.

Beside each `<key>.jpg` lies `<key>.sha256` (`sha256sum -c` reads it), written before the
image: a store that a disk fault, a full disk on another writer or a careless copy damaged
is found by `present()`, and the damaged variants are deleted so that the run makes them again.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from enum import Enum
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from artsim.core.images import ImageRejected, content_hash, file_hash, jpeg_bytes, load_rgb, write_atomically

log = logging.getLogger(__name__)

TEMP_PREFIX = ".tmp-"
# A temporary file older than this belongs to a killed process (one write takes well under
# a second), and can go; younger ones may be another rank's write in progress.
STALE_TEMP_SECONDS = 3600
# Checking reads whole files: threads overlap the reads (hashlib releases the GIL).
CHECK_THREADS = 8


class Entry(Enum):
    SOUND = "sound"
    MISSING = "missing"
    DAMAGED = "damaged"  # found damaged and deleted


class VariantStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        # Two-character fan-out keeps folders small with hundreds of thousands of variants.
        return self.root / key[:2] / f"{key}.jpg"

    def checksum_path(self, key: str) -> Path:
        return self.path(key).with_suffix(".sha256")

    def has(self, key: str) -> bool:
        """Whether a variant is stored under `key` (unchecked: see `present`)."""
        return self.path(key).is_file()

    def present(self, keys: Iterable[str]) -> tuple[set[str], int]:
        """The keys whose stored variant is sound, and how many damaged ones were deleted.

        Every stored file is read and checked against its recorded checksum, so that a
        damaged one is made again instead of being reused (and failing downstream) forever.
        """
        keys = list(keys)
        with ThreadPoolExecutor(CHECK_THREADS, thread_name_prefix="store-check") as pool:
            states = list(
                tqdm(pool.map(self.check, keys), total=len(keys), desc="check store", unit="img", disable=None)
            )
        sound = {key for key, state in zip(keys, states) if state is Entry.SOUND}
        damaged = sum(state is Entry.DAMAGED for state in states)
        if damaged:
            log.warning("store %s: %d damaged variants deleted; they are made again", self.root, damaged)
        return sound, damaged

    def check(self, key: str) -> Entry:
        """Whether the variant under `key` is sound; a damaged one is logged and deleted."""
        if not self.has(key):
            return Entry.MISSING
        problem = self._damage(key)
        if problem is None:
            return Entry.SOUND
        log.warning("store: %s is damaged (%s); deleting it", self.path(key), problem)
        self.discard(key)
        return Entry.DAMAGED

    def _damage(self, key: str) -> str | None:
        """What is wrong with the stored file, None when nothing is."""
        path = self.path(key)
        recorded = self._recorded_checksum(key)
        try:
            if recorded is None:
                return self._adopt(key, path.read_bytes())
            actual, size = file_hash(path), path.stat().st_size
        except FileNotFoundError:
            return "deleted while being checked"
        if actual != recorded:
            return f"sha256 {actual[:12]}… of its {size} bytes is not the recorded {recorded[:12]}…"
        return None

    def read_checked(self, key: str) -> bytes:
        """The stored bytes, checked against the recorded checksum (ImageRejected when they
        differ: e.g. an imported file edited in place since, through its hard link)."""
        data = self.path(key).read_bytes()
        recorded = self._recorded_checksum(key)
        if recorded is not None and content_hash(data) != recorded:
            raise ImageRejected(
                "damaged_in_store", f"sha256 of its {len(data)} bytes is not the recorded {recorded[:12]}…"
            )
        return data

    def _recorded_checksum(self, key: str) -> str | None:
        try:
            recorded = self.checksum_path(key).read_text(encoding="ascii").split()[0]
        except (OSError, UnicodeDecodeError, IndexError):
            return None
        return recorded if len(recorded) == 64 else None

    def _adopt(self, key: str, data: bytes) -> str | None:
        """A variant without a checksum (a store written before checksums were kept, or one
        whose checksum a power cut lost): take it if it decodes whole, recording its checksum
        so that the full decode happens once."""
        try:
            load_rgb(data)
        except ImageRejected as exc:
            return f"no recorded checksum and it does not decode: {exc}"
        self._write_checksum(key, data)
        return None

    def discard(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)
        self.checksum_path(key).unlink(missing_ok=True)

    def put_image(self, key: str, image: Image.Image, jpeg_quality: int) -> Path:
        return self.put_bytes(key, jpeg_bytes(image, jpeg_quality))

    def put_bytes(self, key: str, data: bytes) -> Path:
        # The checksum first: a variant never appears without the means to check it. A kill
        # in between leaves a checksum without an image, which counts as missing.
        self._write_checksum(key, data)
        write_atomically(self.path(key), lambda handle: handle.write(data), prefix=self._temp_prefix())
        return self.path(key)

    def adopt_file(self, key: str, source: Path, data: bytes) -> Path:
        """Store `data`, which `source` held when it was checked, as a hard link to `source`:
        an adopted file then costs no second copy. The bytes are written instead where no link
        can be made (another filesystem) or `source` no longer holds `data`."""
        if not self._link_if_holding(key, source, data):
            return self.put_bytes(key, data)
        return self.path(key)

    def _link_if_holding(self, key: str, source: Path, data: bytes) -> bool:
        """Link `source` in as the variant of `key`, checksum first, if it still holds `data`."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        linked = target.with_name(f"{self._temp_prefix()}{target.name}")
        try:
            os.link(source, linked)
        except OSError:
            return False
        if file_hash(linked) != content_hash(data):  # changed since it was checked: keep what was checked
            linked.unlink()
            return False
        self._write_checksum(key, data)
        os.replace(linked, target)
        return True

    def _write_checksum(self, key: str, data: bytes) -> None:
        line = f"{content_hash(data)}  {self.path(key).name}\n".encode("ascii")
        # Not fsynced: a checksum lost to a power cut only costs a full decode of its variant (see _adopt).
        write_atomically(
            self.checksum_path(key), lambda handle: handle.write(line), durable=False, prefix=self._temp_prefix()
        )

    @staticmethod
    def _temp_prefix() -> str:
        # Host and pid say whose write a leftover was, on a store shared by machines.
        return f"{TEMP_PREFIX}{socket.gethostname()}-{os.getpid()}-"

    def remove_stale_temporaries(self, older_than_s: float = STALE_TEMP_SECONDS) -> int:
        """Delete what killed writers left behind; returns how many files went."""
        if not self.root.is_dir():
            return 0
        cutoff = time.time() - older_than_s
        removed = 0
        for path in self.root.glob(f"*/{TEMP_PREFIX}*"):
            try:
                # ctime: a temporary hard link to an imported file keeps that file's (old) mtime.
                if path.stat().st_ctime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                pass  # another rank removed it first
        if removed:
            log.info("removed %d stale temporary files from %s", removed, self.root)
        return removed
