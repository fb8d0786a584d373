"""What every `artsim` command checks of its arguments and files before torch is imported or a model loaded.

An input that cannot be used answers at once, with status 2 and one line naming the file (by the option the
user gave it with) and why: missing, unreadable, not a regular file (a folder, a FIFO: never opened to wait on),
empty, not an image by its header, or over the one pixel limit (artsim.core.image_header.MAX_PIXELS, ingest's
`max_pixels` default, the server's too). Only the header is read: a file whose pixels turn out damaged is still
reported by the command itself, as one result. `search` with several queries is not stopped by some bad ones:
each is answered or reported on its own; only when none is usable does it stop here.
"""
from __future__ import annotations

import argparse
import os
import stat
import sys
from collections.abc import Iterable
from pathlib import Path

from artsim.app.inputs import must_exist, query_paths
from artsim.core import layout
from artsim.core.errors import UserError
from artsim.core.image_header import ImageRejected, image_header
from artsim.index import IMAGE_SUFFIXES


def image_problem(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be used as an image, in the words of artsim.app.api for the same file; None if it can."""
    try:
        image_header(path)
    except ImageRejected as exc:
        return f"{path}: unusable image ({exc})"
    return None


def check_arguments(args: argparse.Namespace) -> None:
    """The files and folders a command was given (its queries aside: `checked_queries`); UserError on the first
    that cannot be used. A command without an entry in CHECKS checks its own."""
    check = CHECKS.get(args.command)
    if check is not None:
        must_exist([], args)  # the workspace or model folder first: without it nothing else matters
        check(args)


def checked_queries(args: argparse.Namespace) -> list[str]:
    """`search`'s queries, all of them (each bad one is then reported as its own result), once at least one is an
    image; when none is, each is named on stderr and the call stops before the model is loaded."""
    queries = query_paths(args)
    problems = [image_problem(query) for query in queries]
    if not all(problems):
        return queries
    if len(problems) == 1:
        raise UserError(problems[0])
    for problem in problems:
        print(f"artsim: query {problem}", file=sys.stderr)
    raise UserError(f"none of the {len(queries)} query images can be used")


def _check_compare(args: argparse.Namespace) -> None:
    if args.pairs is not None:
        _check_readable_file(args.pairs, "--pairs")
    for problem in (image_problem(path) for path in (args.a, args.b) if path is not None):
        if problem:
            raise UserError(problem)
    for option, path in (("--plot", args.plot), ("--out", args.out)):
        if path is not None:
            _check_writable_place(path, option)


def _check_search(args: argparse.Namespace) -> None:
    if args.queries_file is not None:
        _check_readable_file(args.queries_file, "--queries-file")
    _check_sources(args)


def _check_index(args: argparse.Namespace) -> None:
    _check_folder(args.folder, "", needs_images=not _is_workspace(args.folder))


def _check_sources(args: argparse.Namespace) -> None:
    """--originals (a folder holding an image) and --index (a folder) of `search` and `serve`."""
    if args.originals is not None:
        _check_folder(args.originals, "--originals", needs_images=True)
    if args.index is not None:
        _check_folder(args.index, "--index", needs_images=False)


def _named(path: Path, option: str) -> str:
    return f"{option} {path}" if option else str(path)


def _check_readable_file(path: Path, option: str) -> None:
    """A file read whole by the command (a CSV, a list): regular (a FIFO would block the read), readable."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise UserError(f"{_named(path, option)}: no such file") from None
    except OSError as exc:
        raise UserError(f"{_named(path, option)}: cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        raise UserError(f"{_named(path, option)}: not a regular file")
    if not os.access(path, os.R_OK):
        raise UserError(f"{_named(path, option)}: cannot be read (permission denied)")


def _check_folder(folder: Path, option: str, needs_images: bool) -> None:
    if not folder.exists():
        raise UserError(f"{_named(folder, option)}: no such folder")
    if not folder.is_dir():
        raise UserError(f"{_named(folder, option)}: not a folder")
    if needs_images and not _any_image_file(folder.rglob("*")):
        raise UserError(f"{_named(folder, option)}: no image file ({', '.join(sorted(IMAGE_SUFFIXES))})")


def _any_image_file(paths: Iterable[Path]) -> bool:
    """Whether a folder holds an image file by artsim.index.collection's rule (suffix, a file); stops at the first."""
    return any(path.suffix.lower() in IMAGE_SUFFIXES and path.is_file() for path in paths)


def _is_workspace(folder: Path) -> bool:
    return (folder / layout.INGESTED / layout.MANIFEST).is_file()


def _check_writable_place(path: Path, option: str) -> None:
    """An output file: not a folder, and its folder exists."""
    if path.is_dir():
        raise UserError(f"{option} {path}: is a folder, not a file")
    if not path.parent.is_dir():
        raise UserError(f"{option} {path}: no such folder {path.parent}")


# What each command checks before it imports anything heavy.
CHECKS = {"compare": _check_compare, "search": _check_search, "index": _check_index, "serve": _check_sources}
