"""What an image file's status and header say, before any pixel is decoded: the checks every image from
outside passes first (artsim.core.images decodes after them; the `artsim` command checks its inputs with them
before importing anything heavy). PIL only: no numpy, so that a bad input answers at once."""
from __future__ import annotations

import os
import stat
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

# The one pixel limit of every image from outside (ingest's `max_pixels` default, the CLI's, the server's),
# checked from the header before decoding (check_pixels). PIL's own guard is switched off: it would fire
# first, at other numbers (a warning past this, an error past twice this), with its own wording.
MAX_PIXELS = 89_478_485
Image.MAX_IMAGE_PIXELS = None


class ImageRejected(Exception):
    """An input image cannot be used; `reason` is a short, countable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def check_pixels(size: tuple[int, int], max_pixels: int = MAX_PIXELS, min_side: int = 1) -> tuple[int, int]:
    """`size` (width, height, from a header) if within the limits; else ImageRejected, before any decoding."""
    width, height = size
    if width * height > max_pixels:
        raise ImageRejected("too_many_pixels", f"{width}x{height} = {width * height:,} pixels, "
                                               f"over the limit of {max_pixels:,}")
    if min(width, height) < min_side:
        raise ImageRejected("too_small", f"{width}x{height} is below min_side={min_side}")
    return width, height


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """`path` opened for reading if it is a regular, non-empty file, else ImageRejected. Opened without
    blocking and checked by the open descriptor, so that a FIFO (even one swapped in) cannot hang us."""
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    status = os.fstat(descriptor)
    if stat.S_ISREG(status.st_mode) and status.st_size > 0:
        return os.fdopen(descriptor, "rb")
    os.close(descriptor)
    if stat.S_ISREG(status.st_mode):
        raise ImageRejected("empty_file")
    raise ImageRejected("not_a_regular_file", file_kind(status.st_mode))


def image_header(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> tuple[str, int, int]:
    """(format, width, height) of an image file, read from its status and header only (no pixel decoded,
    a FIFO never opened); ImageRejected says why it cannot be used."""
    try:
        with open_regular(path) as handle, Image.open(handle) as img:
            return (img.format or "", *check_pixels(img.size, max_pixels))
    except ImageRejected:
        raise
    except FileNotFoundError:
        raise ImageRejected("missing_file") from None
    except UnidentifiedImageError:
        raise ImageRejected("not_an_image", "no image format recognised in its header") from None
    except OSError as exc:
        raise ImageRejected("unreadable", exc.strerror or str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a crafted header (TypeError, KeyError, ...) rejects that file only
        raise ImageRejected("corrupt_image", f"{type(exc).__name__}: {exc}") from None


def file_kind(mode: int) -> str:
    """What a path is when it is not a regular file, for messages."""
    kinds = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISSOCK: "a socket",
             stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"}
    return next((kind for test, kind in kinds.items() if test(mode)), "not a regular file")
