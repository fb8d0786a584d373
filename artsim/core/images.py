"""Decoding untrusted images defensively, normalising them, and writing them atomically."""
from __future__ import annotations

import functools
import hashlib
import io
import math
import os
import stat
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol, Union

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

# ImageRejected and MAX_PIXELS are imported from here too, by the decoding stages.
from artsim.core.image_header import MAX_PIXELS, ImageRejected, check_pixels, file_kind, open_regular

# A truncated file must be rejected, not silently padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class StoredImage(Protocol):
    """An image kept inside a bigger file (artsim.core.shards.ShardMember): read whole on demand."""

    def read_bytes(self) -> bytes: ...


# Where a pipeline image lives: a loose file or a member of a shard.
ImageFile = Union[Path, StoredImage]


def as_image_file(value: ImageFile | str) -> ImageFile:
    """A path given as text becomes a Path (so that both name one key); a stored image stays itself."""
    return Path(value) if isinstance(value, str) else value


def load_rgb(source: ImageFile | bytes, *, max_pixels: int = MAX_PIXELS, min_side: int = 1,
             long_side_at_least: int | None = None) -> Image.Image:
    """Decode a file (or the bytes of one) into an RGB image with EXIF orientation applied.

    Size is checked from the header before any pixel is decoded, so a decompression
    bomb costs nothing; a path must name a regular file (a FIFO is refused, never read).
    Transparency is flattened onto white (how a painting's reproduction would be shown),
    not dropped to black. Animations give their first frame.
    With `long_side_at_least`, a JPEG may be decoded at a reduced scale (DCT scaling, as
    `Image.thumbnail` does) as long as its long side stays at least that large: several
    times faster for images that will be shrunk anyway.
    """
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    try:
        if not isinstance(source, (bytes, str, os.PathLike)):
            source = source.read_bytes()
        if isinstance(source, bytes) and not source:
            raise ImageRejected("empty_file")
        opened = io.BytesIO(source) if isinstance(source, bytes) else open_regular(source)
        with opened as handle, Image.open(handle) as img:
            width, height = check_pixels(img.size, max_pixels, min_side)
            if long_side_at_least is not None and max(width, height) > long_side_at_least:
                scale = long_side_at_least / max(width, height)
                img.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
            img.seek(0)
            img.load()
            check_pixels(img.size, max_pixels, min_side)  # a frame that grew the canvas while loading
            return _to_rgb(ImageOps.exif_transpose(img))
    except ImageRejected:
        raise
    except FileNotFoundError:
        raise ImageRejected("missing_file", name) from None
    except UnidentifiedImageError:
        raise ImageRejected("not_an_image", name) from None
    except Exception as exc:  # any decoder error (crafted files raise TypeError, KeyError, ...) rejects that image only
        raise ImageRejected("corrupt_image", f"{type(exc).__name__}: {exc}") from None


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale to 8 bits instead of letting convert() clip at 255.
        array = np.asarray(img, dtype=np.float64)
        peak = max(float(array.max()), 1.0)
        scale = 255.0 / (65535.0 if peak > 255 else 255.0)
        return Image.fromarray(np.clip(array * scale, 0, 255).astype(np.uint8)).convert("RGB")
    return img.convert("RGB")


def fit_within(img: Image.Image, max_side: int) -> Image.Image:
    """Shrink (never enlarge) so that the long side is at most `max_side`, keeping aspect."""
    if max(img.size) <= max_side:
        return img
    scale = max_side / max(img.size)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.LANCZOS)


def file_hash(path: ImageFile, prefix: bytes = b"") -> str:
    """content_hash of a file (of `prefix` + its bytes), read in blocks rather than whole: the one
    file hasher (images, stored variants, cached features, index files, model weights)."""
    if not isinstance(path, (str, os.PathLike)):
        return content_hash(prefix + path.read_bytes())
    digest = hashlib.sha256(prefix)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_hash(data: bytes) -> str:
    """SHA-256 of a file's bytes: the same file under another name hashes alike."""
    return hashlib.sha256(data).hexdigest()


def jpeg_bytes(img: Image.Image, quality: int = 95) -> bytes:
    """The image as a JPEG; the same pixels always give the same bytes (no EXIF, no optimiser pass)."""
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=quality, optimize=False)
    return buffer.getvalue()


def write_atomically(
    path: Path, write: Callable[[BinaryIO], object], *, durable: bool = True, prefix: str = ".tmp-"
) -> None:
    """Create `path` from what `write` puts into a binary file, so that it appears whole or not at all.

    The file is written under a temporary name (`prefix`...) in the same folder and renamed.
    With `durable`, it is fsynced before the rename: without that, a power cut can leave the
    renamed file empty. It gets the mode open() would give it (0o666 less the umask), not
    mkstemp's 0600, so that other users of a shared filesystem can read it as they could
    any other file of ours.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), new_file_mode())
            write(handle)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


_UMASK_LOCK = threading.Lock()


@functools.cache
def new_file_mode() -> int:
    """0o666 less this process's umask: the mode open() gives a new file. Read once."""
    return 0o666 & ~_umask()


def _umask() -> int:
    # os.umask can only be read by setting it, and it is process-wide: another thread creating
    # a file in between would get the temporary value. Linux shows it without touching it.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        current = os.umask(0o077)  # the strictest value while it is briefly wrong
        os.umask(current)
    return current


def read_rgb_array(path: ImageFile, long_side: int | None = None) -> np.ndarray:
    """An HxWx3 uint8 array of one of the pipeline's own images, optionally resized."""
    img = load_rgb(path)
    if long_side is not None:
        img = resize_long_side(img, long_side)
    return np.asarray(img, dtype=np.uint8)


def resize_long_side(img: Image.Image, long_side: int) -> Image.Image:
    """Resize (up or down) so that the long side is exactly `long_side`, keeping aspect."""
    scale = long_side / max(img.size)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    if size == img.size:
        return img
    return img.resize(size, Image.Resampling.BICUBIC)


# Files from outside are read whole only when they are regular files of a sane size.
MAX_FILE_BYTES = 268_435_456


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of `path`, refused (ImageRejected) from its status, before reading, if it is
    not a regular file (opening a FIFO would block forever) or is over `max_bytes`."""
    status = os.stat(path)
    if not stat.S_ISREG(status.st_mode):
        raise ImageRejected("not_a_regular_file", file_kind(status.st_mode))
    if status.st_size > max_bytes:
        raise ImageRejected("file_too_large", f"{status.st_size} bytes, over max_file_bytes={max_bytes}")
    # O_NONBLOCK and fstat: a name swapped for a FIFO since the stat still cannot block us.
    with os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ImageRejected("not_a_regular_file", "replaced while being opened")
        return handle.read(max_bytes + 1)  # a file grown since the stat is caught by the caller's length check
