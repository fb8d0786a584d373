"""Stage report: the technical report of the run -> data/report/report.html (and report.pdf)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from pydantic import BaseModel

import artsim
from artsim.core import layout
from artsim.params import Params, result_params
from artsim.report.document import (
    ReportSettings,
    code_version,
    pdf_available,
    write_report,
)
from stages.common import load_params, setup_logging

# The folders whose digests are the report's code version (dvc.yaml lists both as deps).
CODE_FOLDERS = (Path(artsim.__file__).parent, Path(__file__).parent)


def shown_params(params: Params) -> dict:
    """What decided the run: seed and every block's result keys (run-only keys left out, as in dvc.yaml)."""
    blocks = {name: result_params(value) for name, value in params if isinstance(value, BaseModel)}
    return {"seed": params.seed, **{name: keys for name, keys in blocks.items() if keys}}


def main() -> None:
    setup_logging()
    logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)  # a line per page otherwise
    params = load_params()
    if params.report.pdf and (why := pdf_available()):
        sys.exit(why)
    settings = ReportSettings(examples=params.report.examples, thumbnail=params.report.thumbnail)
    write_report(
        Path("."),
        layout.REPORT_HTML,
        layout.REPORT_PDF if params.report.pdf else None,
        settings,
        shown_params(params),
        code_version(CODE_FOLDERS),
    )


if __name__ == "__main__":
    main()
