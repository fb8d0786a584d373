"""Where a bench leaves the figures the docs quote: bench/results/<name>.json, a table of text
cells ({"source", "columns", "rows"}) that docs/gen_tables.py writes into the pages
(artsim.report.tables.bench). `source` names the command and the commit that produced it, so a
figure in the docs always says where it comes from; the next run of the bench replaces it.

A result may also hold parts: a table of the same shape under a key of its own, recorded by another kind of run of
the same bench (`record(..., part=KEY)`, e.g. bench/search.py's real collection beside its synthetic vectors) and
shown as the view bench/<name>/<KEY>; recording one part (or the result's own table) keeps the others.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from artsim.report.tables import bench_parts

RESULTS = Path(__file__).resolve().parent / "results"


def commit() -> str:
    """HEAD's short hash, `with uncommitted changes` where the code differs from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=RESULTS.parent, capture_output=True, text=True).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") or "an unknown commit"
    # the recorded results themselves are not the code that measured them
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results")
    return commit + (" with uncommitted changes" if changed else "")


def _portable(argument: str) -> str:
    """An argument without this machine's paths: an absolute path (a scratch folder, an output file), alone or
    as the value of `KEY=`, reads PATH; the command stays runnable anywhere with one's own paths."""
    key, equals, value = argument.partition("=") if "=" in argument else ("", "", argument)
    return f"{key}{equals}PATH" if os.path.isabs(value) else argument


def source(note: str = "") -> str:
    """`python bench/<script> <its arguments>, at commit <sha>`, the machine's cores, and `note`."""
    command = " ".join(["python", f"bench/{Path(sys.argv[0]).name}", *map(_portable, sys.argv[1:])])
    load = ", load average {:.1f}".format(os.getloadavg()[0]) if hasattr(os, "getloadavg") else ""
    return f"{command}, at commit {commit()}, on {os.cpu_count()} cores{load}" + (f"; {note}" if note else "")


def record(name: str, columns: Sequence[str], rows: Sequence[Sequence[str]], note: str = "",
           extra: Mapping[str, Any] | None = None, part: str | None = None) -> Path:
    """Write bench/results/<name>.json (every row as long as `columns`), with `extra`'s keys beside
    (figures a view of docs/gen_tables.py renders); returns its path. With `part`, the table goes under that key of
    the result, the rest of it as it was; without, the result's own table is replaced and its parts kept."""
    if any(len(row) != len(columns) for row in rows):
        raise ValueError(f"{name}: every row needs {len(columns)} cells")
    path = RESULTS / f"{name}.json"
    recorded = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    table = {**(extra or {}), "source": source(note), "columns": list(columns),
             "rows": [list(map(str, row)) for row in rows]}
    payload = {**recorded, part: table} if part else {**table, **bench_parts(recorded)}
    path.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(
        f"wrote {path.relative_to(RESULTS.parent.parent)} (python docs/gen_tables.py puts it in the docs)",
        file=sys.stderr,
    )
    return path
