"""The report as one self-contained document: every section rendered through one Jinja2 template
(autoescaped: titles, artists and file names from the data are text, never markup), every image
inlined as a data: URI, and the same HTML printed to PDF by WeasyPrint.

Deterministic: the same run's files, params and code give the same bytes (no timestamp; the code
version is a digest of the source folders, not `git`, since DVC caches the report by its deps).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

import artsim.report.outcomes as outcomes
import artsim.report.sections as sections
from artsim.core import layout
from artsim.core.images import write_atomically
from artsim.report.blocks import Section
from artsim.report.rows import Table, flat
from artsim.report.sources import Gaps, Workspace, figure_text

log = logging.getLogger(__name__)

TEMPLATE = "report.html.j2"
# Folders and files that are no part of the code (DVC's .dvcignore leaves them out of its hashes too).
NOT_CODE = ("__pycache__",)


@dataclass(frozen=True)
class ReportSettings:
    examples: int = 4
    thumbnail: int = 160


def code_version(folders: Sequence[Path]) -> dict[str, str]:
    """Each source folder's digest as DVC records a folder dep in dvc.lock (md5 of its sorted
    [{relpath, md5}] JSON, suffixed `.dir`), so that a report can be matched to the commits whose
    dvc.lock lists the same digest; caches (__pycache__) are left out as .dvcignore leaves them."""
    return {folder.name: _dir_md5(folder) for folder in folders}


def _dir_md5(folder: Path) -> str:
    entries = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not any(part in NOT_CODE for part in relative.parts):
            entries.append(
                {
                    "md5": hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest(),
                    "relpath": relative.as_posix(),
                }
            )
    entries.sort(key=lambda entry: entry["relpath"].split("/"))
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode(), usedforsecurity=False).hexdigest() + ".dir"


def params_table(params: Mapping[str, Any]) -> Table:
    return Table(
        ["key", "value"],
        [[key, figure_text(value)] for key, value in flat(params).items()],
        "params.yaml as this run used it (keys that decide results; run-only keys left out)",
    )


def build_sections(root: Path, settings: ReportSettings) -> tuple[list[Section], Gaps]:
    """Every section of the report of the workspace at `root`, and what could not be shown."""
    workspace = Workspace(root)
    evaluate = workspace.json(layout.metrics_json("evaluate"))
    built = [
        sections.dataset(workspace, settings.examples, settings.thumbnail),
        sections.descriptors(workspace),
        sections.training(workspace),
        outcomes.results(workspace, evaluate),
        outcomes.thresholds(workspace, evaluate),
        outcomes.transformed(workspace, evaluate, settings.thumbnail),
        outcomes.gallery_section(workspace),
        outcomes.index(workspace),
    ]
    return built, workspace.gaps


def render_html(root: Path, settings: ReportSettings, params: Mapping[str, Any], code: Mapping[str, str]) -> str:
    built, gaps = build_sections(root, settings)
    return render_sections(built, gaps, params, code)


def render_sections(built: list[Section], gaps: Gaps, params: Mapping[str, Any], code: Mapping[str, str]) -> str:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return environment.get_template(TEMPLATE).render(
        sections=built, gaps=gaps.notes, params=params_table(params), code=code
    )


def write_report(
    root: Path,
    html_path: Path,
    pdf_path: Path | None,
    settings: ReportSettings,
    params: Mapping[str, Any],
    code: Mapping[str, str],
) -> None:
    """report.html (and report.pdf when `pdf_path` is given), each written atomically."""
    built, gaps = build_sections(root, settings)
    for path, why in gaps.notes:
        log.warning("the report could not use %s: %s", path, why)
    html = render_sections(built, gaps, params, code)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(html_path, lambda handle: handle.write(html.encode("utf-8")))
    if pdf_path is not None:
        pdf = pdf_bytes(html)
        write_atomically(pdf_path, lambda handle: handle.write(pdf))
    log.info(
        "wrote %s%s (%d inputs missing or unusable)", html_path, f" and {pdf_path}" if pdf_path else "", len(gaps.notes)
    )


def pdf_bytes(html: str) -> bytes:
    """The HTML printed to PDF; WeasyPrint may read the document's own data: URIs and nothing else."""
    # Imported here: WeasyPrint loads libpango when imported, and report.pdf: false must not need it.
    import weasyprint
    from weasyprint.urls import URLFetcher

    return weasyprint.HTML(string=html, url_fetcher=URLFetcher(allowed_protocols={"data"})).write_pdf()


def pdf_available() -> str:
    """Empty when WeasyPrint and its system libraries load; else why not (checked before any work)."""
    try:
        import weasyprint  # noqa: F401
    except (ImportError, OSError) as exc:  # OSError: libpango missing
        return (
            f"report.pdf needs WeasyPrint and Debian's libpango-1.0-0 and libpangoft2-1.0-0 "
            f"({type(exc).__name__}: {exc}); install them or set report.pdf: false"
        )
    return ""
