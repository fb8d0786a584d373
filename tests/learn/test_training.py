"""What keeps two machines' runs close: the learning-rate schedule and gradient clipping both
training stages follow, and the tolerance file the end-to-end comparison reads."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from artsim.learn.training import follow_recipe, warmup_cosine

REPO_ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = REPO_ROOT / "tests" / "support" / "reproducibility_tolerance.json"


def test_warmup_rises_linearly_then_cosine_decays_toward_zero() -> None:
    factors = [warmup_cosine(step, warmup=4, total=20) for step in range(20)]
    assert factors[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    decay = factors[3:]
    assert all(later < earlier for earlier, later in zip(decay, decay[1:]))
    # The last step still moves, a little; the schedule reaches zero one step later.
    assert 0.0 < factors[-1] < 0.01
    assert warmup_cosine(20, warmup=4, total=20) == pytest.approx(0.0, abs=1e-12)


def test_without_warmup_the_decay_starts_at_once() -> None:
    factors = [warmup_cosine(step, warmup=0, total=10) for step in range(10)]
    assert 0.95 < factors[0] < 1.0
    assert all(later < earlier for earlier, later in zip(factors, factors[1:]))


def _steps(model: nn.Module, optimizer: torch.optim.Optimizer, count: int, gradient_scale: float) -> list[float]:
    """Take `count` steps with a loss whose gradient has norm ~gradient_scale; the size of each update."""
    sizes = []
    for _ in range(count):
        before = model.weight.detach().clone()
        optimizer.zero_grad()
        (model(torch.ones(1, 4)).sum() * gradient_scale).backward()
        optimizer.step()
        sizes.append(float((model.weight.detach() - before).norm()))
    return sizes


def test_every_optimizer_step_follows_the_schedule_and_the_clip() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 1, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    follow_recipe(optimizer, total_steps=8, warmup_fraction=0.25, grad_clip=0.5)
    sizes = _steps(model, optimizer, 8, gradient_scale=1000.0)
    # SGD with lr 1: an update is the clipped gradient (norm 0.5) times the schedule factor.
    expected = [0.5 * warmup_cosine(step, warmup=2, total=8) for step in range(8)]
    assert sizes == pytest.approx(expected, rel=1e-5, abs=1e-7)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_without_clip_the_gradient_passes_whole() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 1, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    follow_recipe(optimizer, total_steps=4, warmup_fraction=0.0, grad_clip=None)
    first, = _steps(model, optimizer, 1, gradient_scale=3.0)
    # The gradient of 3 * sum(w . ones(4)) has norm 3 * sqrt(4).
    assert first == pytest.approx(3.0 * 2.0 * warmup_cosine(0, warmup=0, total=4))


def test_the_groups_keep_their_own_rates() -> None:
    trunk, head = nn.Linear(2, 2), nn.Linear(2, 1)
    optimizer = torch.optim.AdamW([{"params": trunk.parameters(), "lr": 0.1}, {"params": head.parameters(), "lr": 1.0}])
    follow_recipe(optimizer, total_steps=10, warmup_fraction=0.5, grad_clip=None)
    assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([0.1 / 5, 1.0 / 5])


def _dotted(mapping: dict, key: str):
    for part in key.split("."):
        mapping = mapping.get(part) if isinstance(mapping, dict) else None
    return mapping


def test_the_tolerance_file_covers_the_headline_metrics_with_finite_positive_bounds() -> None:
    tolerance = json.loads(TOLERANCE.read_text(encoding="utf-8"))
    committed = json.loads((REPO_ROOT / "metrics" / "evaluate.json").read_text(encoding="utf-8"))
    assert {"mse", "mae", "r2", "spearman"} <= set(tolerance["evaluate"])
    assert any("pair_auc" in key for key in tolerance["evaluate"])
    assert any("recall_at_1" in key for key in tolerance["evaluate"])
    for key, spec in tolerance["evaluate"].items():
        assert math.isfinite(spec["tolerance"]) and spec["tolerance"] > 0, key
        assert spec["tolerance"] >= spec["cross_kernel_max"], key
        assert isinstance(_dotted(committed, key), float), f"{key} is not a metric of metrics/evaluate.json"
