"""What the `artsim` command checks of its inputs before anything heavy is imported: the files named
exist, and the queries of `search` (positional, --queries DIR, --queries-file), each of which is then
searched or reported on its own."""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from artsim.core.errors import UserError
from artsim.index import IMAGE_SUFFIXES


def must_exist(paths: Sequence[str | Path], args: argparse.Namespace | None = None) -> None:
    """Missing inputs (and a missing workspace or model folder) fail here, before torch is imported."""
    location = None if args is None else (args.model if args.model is not None else args.workspace)
    if location is not None and not Path(location).exists():
        raise UserError(f"{location}: no such workspace or model folder")
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise UserError(
            f"no such file: {', '.join(missing[:5])}" + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        )


def query_paths(args: argparse.Namespace) -> list[str]:
    """The queries: positional images, then the images of --queries DIR (sorted), then --queries-file's lines."""
    queries = list(args.queries)
    if args.queries_dir is not None:
        if not args.queries_dir.is_dir():
            raise UserError(f"--queries {args.queries_dir}: not a folder")
        queries += sorted(
            str(p) for p in args.queries_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
    if args.queries_file is not None:
        try:
            queries += [
                line.strip() for line in args.queries_file.read_text(encoding="utf-8").splitlines() if line.strip()
            ]
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"--queries-file {args.queries_file}: cannot be read ({exc})") from None
    if not queries:
        raise UserError("search needs at least one query image (positional, --queries DIR or --queries-file)")
    must_exist([], args)  # each query is checked on its own (artsim.app.preflight.checked_queries)
    return queries
