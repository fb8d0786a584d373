import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from artsim.params import DEFAULT_SCORE_WEIGHTS, ParamsError, parse_params
from tests.support.helpers import REPO_ROOT


def committed_params() -> dict:
    return yaml.safe_load((REPO_ROOT / "params.yaml").read_text())


def with_value(raw: dict, dotted_key: str, value) -> dict:
    node = raw
    *parents, last = dotted_key.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    return raw


def test_committed_params_are_valid():
    params = parse_params(committed_params())
    assert params.generate.backend == "style_transfer"
    assert params.score.weights.as_dict() == DEFAULT_SCORE_WEIGHTS


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("generate.backend", "dall-e", "style_transfer"),
        ("finetune.label", "artist", "'style' or 'genre'"),
        ("finetune.weights", "no/such/file.pth", "'none', 'imagenet'"),
        ("score.weights.color", -1.0, "greater than or equal to 0"),
        ("score.negatives", "many", "integer"),
        ("generate.strengths", [0.5, 1.5], "(0, 1]"),
        ("ingest.max_side", 8, "greater than or equal to 32"),
        ("finetune.batch_size", 1, "greater than or equal to 2"),  # one image per step would train nothing
    ],
)
def test_bad_value_names_its_key_and_what_is_allowed(key, value, allowed):
    with pytest.raises(ParamsError) as error:
        parse_params(with_value(committed_params(), key, value))
    message = str(error.value)
    assert key in message
    assert allowed in message


def test_all_zero_weights_are_rejected():
    raw = committed_params()
    raw["score"]["weights"] = {"color": 0, "texture": 0, "edges": 0}
    with pytest.raises(ParamsError, match="score.weights"):
        parse_params(raw)


def test_unknown_key_is_rejected_so_typos_do_not_pass_silently():
    with pytest.raises(ParamsError, match="finetune.epoch"):
        parse_params(with_value(committed_params(), "finetune.epoch", 3))


def test_stage_fails_on_bad_params_before_doing_any_work(tmp_path: Path):
    raw = with_value(committed_params(), "ingest.max_side", "big")
    raw["ingest"]["source"] = str(REPO_ROOT / "data" / "sample")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    result = subprocess.run(
        [sys.executable, "-m", "stages.ingest"], cwd=tmp_path, capture_output=True, text=True,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0
    assert "ingest.max_side" in result.stderr
    assert not (tmp_path / "data").exists()
    assert not (tmp_path / "metrics").exists()
