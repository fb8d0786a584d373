"""A cache must not live inside a DVC output: DVC deletes outputs before their stage runs
(and generate clears data/generated itself), so such a cache would be lost on every run."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from artsim.params import DVC_OUTPUTS, ParamsError, parse_params

ROOT = Path(__file__).resolve().parents[2]


def _declared_outputs() -> set[str]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    declared = set()
    for stage in stages.values():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind, []):
                declared.add(next(iter(entry)) if isinstance(entry, dict) else entry)
    return declared


def test_the_list_of_dvc_outputs_is_the_one_dvc_yaml_declares() -> None:
    assert set(DVC_OUTPUTS) == _declared_outputs()


def _params(key: str, folder: object) -> dict:
    block, name = key.split(".")
    return {"ingest": {"source": "data/sample"}, block: {name: folder}}


@pytest.mark.parametrize("key", ["generate.store", "siamese.feature_cache", "describe.cache"])
@pytest.mark.parametrize("inside", ["data/generated/cache", "data/ingested", "./models/siamese/../siamese/features",
                                    "metrics/finetune/x", "data/pairs/a/b"])
def test_a_cache_inside_a_dvc_output_is_refused_naming_the_key(key: str, inside: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths are from the repository root, where the stages run
    for folder in (inside, tmp_path / inside):
        with pytest.raises(ParamsError, match=rf"{key}: .*inside .*a DVC output"):
            parse_params(_params(key, str(folder)))


@pytest.mark.parametrize("key", ["generate.store", "siamese.feature_cache", "describe.cache"])
def test_a_cache_through_a_link_into_a_dvc_output_is_refused(
    key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "generated").mkdir(parents=True)
    (tmp_path / "cache").symlink_to(tmp_path / "data" / "generated")
    with pytest.raises(ParamsError, match=key):
        parse_params(_params(key, "cache/store"))


@pytest.mark.parametrize("key", ["generate.store", "siamese.feature_cache", "describe.cache"])
@pytest.mark.parametrize("outside", [".artsim/cache", "data/generated-cache", "data/cache", "metrics-cache"])
def test_a_cache_beside_the_outputs_is_accepted(
    key: str, outside: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    block, name = key.split(".")
    assert getattr(getattr(parse_params(_params(key, outside)), block), name) == Path(outside)
