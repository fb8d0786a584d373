"""Stage report (stages/report.py): report.html and report.pdf under data/report, the same bytes
from the same run; its params checked before any work; its dvc.yaml entry shows and depends on
every key that decides a result, and on no run-only key."""

from __future__ import annotations

import pytest
import yaml

from artsim.core import layout
from artsim.params import ParamsError, parse_params, run_only_keys
from tests.support.helpers import REPO_ROOT
from tests.support.report_workspace import build_report_workspace


def test_the_stage_writes_html_and_pdf_the_same_twice(tmp_path, monkeypatch):
    root = build_report_workspace(tmp_path / "run")
    raw = {"ingest": {"source": "data/sample"}, "report": {"examples": 1, "thumbnail": 48, "pdf": True}}
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(root)
    from stages import report

    written = []
    for _ in range(2):
        report.main()
        written.append({name: (root / layout.REPORT / name).read_bytes() for name in ("report.html", "report.pdf")})
    assert written[0] == written[1]
    assert written[0]["report.pdf"].startswith(b"%PDF-")
    html = written[0]["report.html"].decode()
    assert (
        "report.examples" in html and "siamese.lr" in html and "siamese.loader_workers" not in html
    )  # run-only left out


def test_report_params_are_checked_before_any_work():
    with pytest.raises(ParamsError, match=r"report\.examples"):
        parse_params({"ingest": {"source": "data/sample"}, "report": {"examples": -1}})
    with pytest.raises(ParamsError, match=r"report\.colour"):
        parse_params({"ingest": {"source": "data/sample"}, "report": {"colour": "red"}})


def _leaf_keys(tree: dict, prefix: str = "") -> set[str]:
    return {
        key
        for name, value in tree.items()
        for key in (_leaf_keys(value, f"{prefix}{name}.") if isinstance(value, dict) else {prefix + name})
    }


def test_the_stage_depends_on_every_key_it_shows_and_on_no_run_only_key():
    stage = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]["report"]
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    listed = set(stage["params"])
    covered = {key for key in _leaf_keys(params) if any(key == d or key.startswith(d + ".") for d in listed)}
    assert covered == _leaf_keys(params) - run_only_keys()
    assert stage["outs"] == [layout.REPORT.as_posix()]
    assert {"artsim", "stages"} <= set(stage["deps"])  # the code version is their digest
