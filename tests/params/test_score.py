"""The default target weights (issue 17 §4): the descriptor study's fit, rounded, as explicit numbers."""
from __future__ import annotations

import pytest
import yaml

from artsim.describe.registry import DESCRIPTORS
from artsim.params import CLASSIC_SCORE_WEIGHTS, DEFAULT_SCORE_WEIGHTS, ScoreParams, parse_params
from tests.support.helpers import REPO_ROOT

# `score.weights: fit` on the embedded sample's train pairs (metrics/score.json study.weights of
# that run, README "The descriptor study"), to 4 decimals.
SAMPLE_FIT = {"layout": 0.3391, "phash": 0.2089, "edges": 0.1233, "orientation": 0.1067, "lab": 0.0883,
              "color": 0.0675, "texture": 0.0612, "lbp": 0.00496}


def test_params_yaml_and_the_params_default_are_the_same_explicit_numbers() -> None:
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    assert raw["score"]["weights"] == DEFAULT_SCORE_WEIGHTS
    assert parse_params(raw).score.weights.as_dict() == ScoreParams().weights.as_dict() == DEFAULT_SCORE_WEIGHTS


def test_default_weights_are_the_rounded_fit_summing_to_one_over_registered_descriptors() -> None:
    assert set(DEFAULT_SCORE_WEIGHTS) <= set(DESCRIPTORS)
    assert sum(DEFAULT_SCORE_WEIGHTS.values()) == pytest.approx(1.0, abs=1e-9)
    rounded = {name: round(weight, 2) for name, weight in SAMPLE_FIT.items() if round(weight, 2) > 0}
    assert DEFAULT_SCORE_WEIGHTS == rounded


def test_the_three_descriptor_alternative_is_still_valid() -> None:
    assert set(CLASSIC_SCORE_WEIGHTS) == {"color", "texture", "edges"}
    assert sum(CLASSIC_SCORE_WEIGHTS.values()) == pytest.approx(1.0)
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    raw["score"]["weights"] = dict(CLASSIC_SCORE_WEIGHTS)
    assert parse_params(raw).score.weights.as_dict() == CLASSIC_SCORE_WEIGHTS
