"""Block `report`: what the technical report of the run shows (stage report, artsim.report)."""

from __future__ import annotations

from pydantic import Field

from artsim.params.base import Block


class ReportParams(Block):
    examples: int = Field(4, ge=0, le=32, description="originals shown with their variants at every strength")
    thumbnail: int = Field(160, ge=32, le=512, description="long side of each example image in the report, in pixels")
    pdf: bool = Field(True, description="also write report.pdf (WeasyPrint) beside report.html")
