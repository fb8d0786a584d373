"""The example images of the report (artsim.report.examples): a bounded number, taken in turn
from each style, and only those images read."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import artsim.report.examples as examples_module
from artsim.report.document import ReportSettings, render_html
from artsim.report.examples import pick_originals
from tests.support.report_workspace import STRENGTHS, build_report_workspace


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return build_report_workspace(tmp_path_factory.mktemp("run"))


def test_only_the_shown_images_are_read(workspace, monkeypatch):
    reads = []
    real = examples_module.load_rgb
    monkeypatch.setattr(examples_module, "load_rgb", lambda source, **kw: reads.append(source) or real(source, **kw))
    render_html(workspace, ReportSettings(examples=2, thumbnail=64), {}, {})
    # 2 originals and their variants at each strength, one variant to alter, the gallery: not the 39 images there are
    assert len(reads) == 2 * (1 + len(STRENGTHS)) + 1 + 1


def test_examples_are_taken_in_turn_from_each_style():
    originals = pd.DataFrame({"id": ["b2", "a1", "c1", "b1", "a2"], "style": ["B", "A", "C", "B", "A"]})
    picked = pick_originals(originals, {"a1", "a2", "b1", "b2", "c1"}, 4)
    assert list(picked["id"]) == ["a1", "b1", "c1", "a2"]
    assert list(pick_originals(originals, {"b2"}, 3)["id"]) == ["b2"]  # only originals with variants
    assert pick_originals(originals, {"a1"}, 0).empty
