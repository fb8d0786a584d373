"""Where an export may write. Never into the workspace's pipeline outputs (DVC owns them: a file
written there is lost or, worse, hashed into the next commit), never over a file or folder that
is not ours unless asked (`force`), and with `force` still never over a folder that holds
anything an export does not write (`--force` on the wrong path must not delete someone's files)."""
from __future__ import annotations

import os
from pathlib import Path

from artsim.core import layout
from artsim.core.errors import UserError

CONFIGS = ("originals", "variants", "pairs")
EXPORT_ENTRIES = frozenset({*CONFIGS, "README.md"})


def _inside(path: Path, folder: Path) -> bool:
    path, folder = (Path(os.path.realpath(p)) for p in (path, folder))
    return path == folder or folder in path.parents


def check_not_pipeline_output(workspace: Path, out: Path) -> None:
    for output in layout.DVC_OUTPUTS:
        if _inside(out, workspace / output) or _inside(workspace / output, out):
            raise UserError(f"{out}: inside or over the workspace's pipeline output {output}; "
                            "write the export elsewhere")


def check_dataset_target(workspace: Path, out: Path, force: bool) -> None:
    check_not_pipeline_output(workspace, out)
    if _inside(workspace, out):
        raise UserError(f"{out}: holds the workspace {workspace}; write the export elsewhere")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise UserError(f"{out}: exists and is not a folder; give a new folder")
    entries = sorted(entry.name for entry in out.iterdir()) if out.is_dir() else []
    if entries and not force:
        raise UserError(f"{out}: exists and is not empty; give a new folder, or --force to replace an earlier export")
    strangers = [name for name in entries if name not in EXPORT_ENTRIES]
    if strangers:
        raise UserError(f"{out}: holds {strangers[0]!r}, which no export writes; not replacing it even with --force")


def check_image_target(workspace: Path, out: Path, force: bool) -> None:
    check_not_pipeline_output(workspace, out)
    if out.is_dir():
        raise UserError(f"{out}: is a folder; give the image's file name")
    if (out.exists() or out.is_symlink()) and not force:
        raise UserError(f"{out}: exists; --force to overwrite it")
    if not out.parent.is_dir():
        raise UserError(f"{out.parent}: no such folder")
