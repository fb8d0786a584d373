"""Keeping untrusted relative paths inside the folder they are meant to name.

Ingest (a source's metadata names files) and generate's `import` backend (a template over
metadata names files) both open paths that data, not the user, chose; both refuse the same
way, with the same countable reasons.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PathRefused:
    """Why `relative` may not be opened: `path_escapes_root`, `link_outside_source` or `unreadable_path`."""

    relative: str
    reason: str
    detail: str = ""


def resolve_inside(root: Path, relative: str) -> Path | PathRefused:
    """`root/relative` if it stays inside root after links are followed, else why not.

    A path that leaves root by itself (`..`, absolute) escapes the root; one that only
    leaves it through a symlink (to a file or to a folder on the way) is a link outside.
    """
    candidate = root / relative
    try:
        resolved = candidate.resolve(strict=False)
        real_root = root.resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # RuntimeError: a symlink loop; ValueError: a NUL byte
        return PathRefused(relative, "unreadable_path", str(exc))
    if resolved.is_relative_to(real_root):
        return candidate
    plain_root = Path(os.path.normpath(root.absolute()))
    lexically_inside = Path(os.path.normpath(plain_root / relative)).is_relative_to(plain_root)
    reason = "link_outside_source" if lexically_inside else "path_escapes_root"
    return PathRefused(relative, reason, f"resolves to {resolved}")
