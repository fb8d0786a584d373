"""Images packed into tar shards, read back by byte range.

DVC hashes, links and checks every file of a directory output; at WikiArt's scale (~326k
images) that per-file bookkeeping costs as much as the stages that make the images. So
ingest and generate pack their images into uncompressed tar shards and record, per image,
its shard and the byte range of its member in the manifest (`shard`, `offset`, `length`;
`path` is the member's name). DVC then tracks a few hundred files per output; a reader
fetches one image with one `pread` (random access, nothing extracted) and checks the tar
header before it, so a manifest row that points at the wrong bytes is caught; and a shard is
a plain tar (WebDataset's layout): `tar tf` lists it and `tar xf` gives the JPEGs back.

Which shard an image goes to depends on its own key only (one of `BUCKETS` buckets by a hash
of the key, within a group such as a strength), not on its position among the others: adding
images rewrites the shards they land in and leaves the others byte for byte, so DVC's cache
and remote keep them and `dvc push`/`pull` move only what changed.

A manifest without the location columns names loose files (`path`, relative to its folder),
as hand-made manifests do; readers take both (`manifest_images`).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from artsim.core.images import ImageFile, ImageRejected

# 256 buckets: ~30 MB shards for WikiArt's 81k originals (and per strength of variants), a
# thousand-odd files for DVC instead of 326k, and an added painting rewrites 1/256 of them.
BUCKETS = 256
# A bucket whose shard would pass this continues in a next part (`ab.1.tar`, ...).
SHARD_BYTES = 1 << 30
SHARD_FOLDER = "shards"
LOCATION_COLUMNS = ("shard", "offset", "length")
_END_OF_ARCHIVE = 2 * tarfile.BLOCKSIZE


def bucket(key: str) -> str:
    """The bucket of an image key: two hex digits of its hash, whatever the key looks like."""
    return hashlib.sha256(key.encode()).hexdigest()[:2]


@dataclass(frozen=True)
class ShardMember:
    """One image inside a shard: `length` bytes from `offset`, in the member named `name`."""

    shard: Path
    offset: int
    length: int
    name: str = ""

    def read_bytes(self) -> bytes:
        """The member's bytes, after checking its tar header (name and size) against the manifest.

        The shard is untrusted like any file after a crash or a careless copy: it is opened
        without blocking (a FIFO put in its place cannot hang a reader) and must be a regular
        file; a range beyond it, or a header that does not announce this member, is rejected
        before anything is decoded (ImageRejected).
        """
        if self.offset < tarfile.BLOCKSIZE or self.offset % tarfile.BLOCKSIZE or self.length < 0:
            raise ImageRejected(
                "bad_shard_location", f"{self}: the manifest's offset or length is missing or impossible"
            )
        descriptor = os.open(self.shard, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        try:
            status = os.fstat(descriptor)
            if not stat.S_ISREG(status.st_mode):
                raise ImageRejected("not_a_regular_file", str(self.shard))
            if self.offset + self.length > status.st_size:
                raise ImageRejected("truncated_shard", f"{self} lies beyond the shard's {status.st_size} bytes")
            block = os.pread(descriptor, tarfile.BLOCKSIZE + self.length, self.offset - tarfile.BLOCKSIZE)
        finally:
            os.close(descriptor)
        self._check_header(block[:tarfile.BLOCKSIZE])
        return block[tarfile.BLOCKSIZE:]

    def _check_header(self, header: bytes) -> None:
        try:
            member = tarfile.TarInfo.frombuf(header, "utf-8", "surrogateescape")
        except tarfile.HeaderError as exc:
            raise ImageRejected("shard_mismatch", f"{self}: no tar header before it ({exc})") from None
        if member.size != self.length or (self.name and member.name != self.name):
            raise ImageRejected(
                "shard_mismatch",
                f"{self}: the shard holds {member.name!r} of {member.size} bytes there, "
                f"the manifest says {self.name!r} of {self.length}",
            )

    def __str__(self) -> str:
        return f"{self.shard}#{self.offset}+{self.length}"


class ShardWriter:
    """Appends images to `folder/<group>.tar` shards, continuing a group in `<group>.1.tar`, ...
    before a shard would pass `max_bytes`. Members carry no time, owner or host, so the same
    images in the same order give the same bytes. No file stays open between images (there may
    be thousands of shards). Use as a context manager; the folder is emptied first, and the
    archives are ended on leaving it."""

    def __init__(self, folder: Path, max_bytes: int = SHARD_BYTES) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self._sizes: dict[str, int] = {}  # shard file name -> bytes written so far
        self._part: dict[str, int] = {}  # group -> index of the part being written

    def __enter__(self) -> "ShardWriter":
        shutil.rmtree(self.folder, ignore_errors=True)  # shards of an earlier or crashed run
        self.folder.mkdir(parents=True, exist_ok=True)
        return self

    def add(self, name: str, data: bytes, group: str) -> tuple[str, int, int]:
        """Store `data` as member `name` in a shard of `group` (e.g. `bucket(key)`); returns the
        manifest's (shard, offset, length), the shard named relative to the output folder."""
        header = _header(name, len(data))
        shard = self._shard_for(group, len(header) + _padded(len(data)))
        with open(self.folder / shard, "ab") as handle:
            handle.write(header + data + bytes(_padded(len(data)) - len(data)))
        offset = self._sizes.get(shard, 0) + len(header)
        self._sizes[shard] = offset + _padded(len(data))
        return f"{self.folder.name}/{shard}", offset, len(data)

    def _shard_for(self, group: str, size: int) -> str:
        part = self._part.setdefault(group, 0)
        written = self._sizes.get(_shard_name(group, part), 0)
        if written and written + size + _END_OF_ARCHIVE > self.max_bytes:
            part = self._part[group] = part + 1
        return _shard_name(group, part)

    def __exit__(self, *_: object) -> None:
        for shard in self._sizes:
            with open(self.folder / shard, "ab") as handle:
                handle.write(bytes(_END_OF_ARCHIVE))


def _shard_name(group: str, part: int) -> str:
    return f"{group}.tar" if part == 0 else f"{group}.{part}.tar"


def _header(name: str, size: int) -> bytes:
    member = tarfile.TarInfo(name)
    # USTAR: one fixed header block, no PAX records carrying times; names are ours and short.
    member.size, member.mode, member.mtime = size, 0o444, 0
    return member.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")


def _padded(size: int) -> int:
    return -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


def read_locations(manifest_path: Path) -> pd.DataFrame:
    """Only what locates each image of a manifest (id, path and the location columns it has):
    a manifest's other columns (prompts, metadata) can be most of its size."""
    present = set(pq.read_schema(manifest_path).names)
    return pd.read_parquet(manifest_path, columns=[c for c in ("id", "path", *LOCATION_COLUMNS) if c in present])


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
    # A row whose offset or length is not a whole number is one bad image (rejected when read), not a bad manifest.
    offsets, lengths = (_whole_or_minus_one(manifest[column]) for column in ("offset", "length"))
    return [
        ShardMember(shards[s], o, n, str(p))
        for s, o, n, p in zip(manifest["shard"], offsets, lengths, manifest["path"])
    ]


def _whole_or_minus_one(column: pd.Series) -> list[int]:
    numbers = pd.to_numeric(column, errors="coerce")
    whole = numbers.notna() & (numbers == numbers.round())
    return [int(n) if ok else -1 for n, ok in zip(numbers, whole)]


def _shard_inside(root: Path, name: str) -> Path:
    plain_root = os.path.normpath(root.absolute())
    if "\0" in name or os.path.commonpath([plain_root, os.path.normpath(os.path.join(plain_root, name))]) != plain_root:
        raise ValueError(
            f"{root}: the manifest names shard {name!r}, outside its folder; the manifest is damaged: rerun its stage"
        )
    return root / name


def cell_text(value: object) -> str:
    """A manifest cell as text: "" for a missing one (None, NaN, pd.NA), never "nan"."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return ""
    return str(value)
