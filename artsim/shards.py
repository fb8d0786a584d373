"""Images packed into tar shards, read back by byte range.

DVC hashes, links and checks every file of a directory output; at WikiArt's scale (~326k
images) that per-file bookkeeping costs as much as the stages that make the images. So
ingest and generate pack their images into uncompressed tar shards of about `SHARD_BYTES`
each and record, per image, its shard and the byte range of its member in the manifest
(`shard`, `offset`, `length`). DVC then tracks a handful of files per output; a reader fetches
one image with one `pread` (random access, nothing extracted); and a shard is a plain tar
(WebDataset's layout), so `tar tf` lists it and `tar xf` gives the JPEGs back.

A manifest without these columns names loose files (`path`, relative to its folder), as
hand-made manifests do; readers take both (`manifest_images`).
"""
from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from artsim.images import ImageFile, ImageRejected

# ~1 GB: few enough files for DVC at WikiArt's scale, small enough to push, pull and re-hash.
SHARD_BYTES = 1 << 30
SHARD_FOLDER = "shards"
LOCATION_COLUMNS = ("shard", "offset", "length")


@dataclass(frozen=True)
class ShardMember:
    """One image inside a shard: `length` bytes from `offset`."""

    shard: Path
    offset: int
    length: int

    def read_bytes(self) -> bytes:
        """The member's bytes; ImageRejected when the shard is shorter than the manifest says.

        The shard is untrusted like any file after a crash or a careless copy: it is opened
        without blocking (a FIFO put in its place cannot hang a reader) and must be a regular file.
        """
        descriptor = os.open(self.shard, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        try:
            status = os.fstat(descriptor)
            if not stat.S_ISREG(status.st_mode):
                raise ImageRejected("not_a_regular_file", str(self.shard))
            if self.offset < 0 or self.length < 0 or self.offset + self.length > status.st_size:
                raise ImageRejected("truncated_shard", f"{self} lies beyond the shard's {status.st_size} bytes")
            data = os.pread(descriptor, self.length, self.offset)
        finally:
            os.close(descriptor)
        if len(data) != self.length:
            raise ImageRejected("truncated_shard", f"{self}: read {len(data)} bytes")
        return data

    def __str__(self) -> str:
        return f"{self.shard}#{self.offset}+{self.length}"


class ShardWriter:
    """Appends images to `folder/000000.tar`, `000001.tar`, ... starting a new shard before one
    would pass `max_bytes`. Members carry no time, owner or host, so the same images in the
    same order give the same bytes. Use as a context manager; the folder is emptied first."""

    def __init__(self, folder: Path, max_bytes: int = SHARD_BYTES) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.count = 0
        self._handle: io.BufferedWriter | None = None
        self._tar: tarfile.TarFile | None = None

    def __enter__(self) -> "ShardWriter":
        shutil.rmtree(self.folder, ignore_errors=True)  # shards of an earlier or crashed run
        self.folder.mkdir(parents=True)
        return self

    def add(self, name: str, data: bytes) -> tuple[str, int, int]:
        """Store `data` as member `name`; returns the manifest's (shard, offset, length), the shard
        named relative to the output folder that holds the shards' folder."""
        # Room for the header, the padded data and the end of the archive (zero blocks up to a record).
        needed = tarfile.BLOCKSIZE + _padded(len(data)) + tarfile.RECORDSIZE
        if self._tar is None or (self._tar.offset and self._tar.offset + needed > self.max_bytes):
            self._next_shard()
        assert self._tar is not None
        member = tarfile.TarInfo(name)
        member.size, member.mode, member.mtime = len(data), 0o444, 0
        self._tar.addfile(member, io.BytesIO(data))
        # The data ends the archive so far, padded to a whole block (addfile copies `member`).
        return f"{self.folder.name}/{self._shard_name(self.count - 1)}", self._tar.offset - _padded(len(data)), len(data)

    def _next_shard(self) -> None:
        self._close_shard()
        self._handle = open(self.folder / self._shard_name(self.count), "wb")
        # USTAR: fixed headers, no PAX records carrying times; names are ours and short.
        self._tar = tarfile.open(fileobj=self._handle, mode="w", format=tarfile.USTAR_FORMAT)
        self.count += 1

    @staticmethod
    def _shard_name(index: int) -> str:
        return f"{index:06d}.tar"

    def _close_shard(self) -> None:
        if self._tar is not None:
            self._tar.close()
        if self._handle is not None:
            self._handle.close()
        self._tar = self._handle = None

    def __exit__(self, *_: object) -> None:
        self._close_shard()


def _padded(size: int) -> int:
    return -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


def manifest_images(manifest: pd.DataFrame, root: Path) -> list[ImageFile]:
    """The image of every manifest row: a ShardMember, or the loose file `root/path`.

    A manifest naming a shard outside `root` (`..`, an absolute path) is refused whole: the
    manifest is damaged, and no row of it can be trusted to name the image it describes. The
    check is on the name only: DVC's `symlink` cache type rightly links shards elsewhere.
    """
    root = Path(root)
    if not set(LOCATION_COLUMNS) <= set(manifest.columns):
        return [root / str(p) for p in manifest["path"]]
    shards = {name: _shard_inside(root, str(name)) for name in manifest["shard"].unique()}
    return [ShardMember(shards[s], int(o), int(n)) for s, o, n in zip(manifest["shard"], manifest["offset"], manifest["length"])]


def _shard_inside(root: Path, name: str) -> Path:
    plain_root = os.path.normpath(root.absolute())
    if "\0" in name or os.path.commonpath([plain_root, os.path.normpath(os.path.join(plain_root, name))]) != plain_root:
        raise ValueError(f"{root}: the manifest names shard {name!r}, outside its folder; the manifest is damaged: rerun its stage")
    return root / name
