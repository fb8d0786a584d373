"""The repository's DVC config keeps one copy of each image on disk: a stage output that is a
hard link to an entry of a store outside the workspace (as data/generated is to the variant
store) stays that link after `dvc repro`, and the DVC cache holds the same inode, not a copy
(README, "Working with DVC at scale")."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.helpers import REPO_ROOT

# The stage links a stored file into its output, as stages/generate.py does from the variant store.
LINK_FROM_STORE = "python -c \"import os; os.makedirs('out'); os.link('../store/a.jpg', 'out/a.jpg')\""


def _dvc(args: list[str], cwd: Path) -> None:
    env = dict(os.environ, DVC_NO_ANALYTICS="1", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    subprocess.run(["dvc", *args], cwd=cwd, env=env, check=True, capture_output=True)


def test_an_output_linked_from_a_store_is_one_inode_in_store_workspace_and_cache(tmp_path: Path) -> None:
    store, repo = tmp_path / "store", tmp_path / "repo"
    store.mkdir()
    (store / "a.jpg").write_bytes(b"\xff\xd8\xff" + os.urandom(4096))
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    _dvc(["init", "-q"], repo)
    shutil.copyfile(REPO_ROOT / ".dvc" / "config", repo / ".dvc" / "config")
    _dvc(["stage", "add", "-q", "-n", "link", "-o", "out", LINK_FROM_STORE], repo)
    _dvc(["repro", "-q"], repo)

    workspace_file = repo / "out" / "a.jpg"
    cached = [p for p in (repo / ".dvc" / "cache").rglob("*") if p.is_file() and not p.name.endswith(".dir")]
    assert len(cached) == 1
    inodes = {path.stat().st_ino for path in (store / "a.jpg", workspace_file, cached[0])}
    assert len(inodes) == 1, "the image exists more than once on disk"
