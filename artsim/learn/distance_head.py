"""The siamese head: a score that is 1 for an image with itself, by construction.

    score(a, b) = floor + (1 - floor) * exp(-f(|ea - eb|))

f is a bias-free linear projection of the standardised |ea - eb|, squared, summed with
non-negative weights (softplus) and a positive scale, so f >= 0 and f(0) = 0 exactly: identical
embeddings score exactly 1 whatever the weights, and every score lies in [floor, 1] within
[0, 1]. |ea - eb| is symmetric in floating point, so f(a, b) == f(b, a) bit for bit.

The floor (sigmoid of a learned logit) is what unrelated paintings score: their descriptor
targets sit near 0.3, not 0, and a head without a floor would have to spend its whole range
of distances reaching them (which cost the regression most of its R² in an earlier try).
Squares rather than ReLUs: a ReLU unit pushed negative on every (non-negative) difference
dies, and a head whose units all die scores every pair 1; a square's gradient vanishes
only where its projection is exactly 0.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

# The untrained head's floor as a fraction of the mean train score: below what unrelated
# pairs score, so training can move it either way.
START_FLOOR_SHARE = 0.5
# exp(-e^60 x d) is 0 in float32 for any distance d above 1e-24 (and e^60 fits in float32).
BASELINE_LOG_SCALE = 60.0


class DistanceHead(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        # 1 / root mean square of each |ea - eb| dimension over the train pairs (calibrate);
        # a scale only, no shift, so that a zero difference stays zero.
        self.register_buffer("feature_scale", torch.ones(width))
        # Weights of unit scale, the projection divided by sqrt(width): |ea - eb| is non-negative,
        # so an optimiser step that moves every weight by lr the same way moves a projection by
        # lr x sum(|d|); at the usual 1/sqrt(width) init scale one Adam step at lr 1e-3 would
        # throw every pair to the floor. (Weight-scale reparametrisation, as in weight norm.)
        self.hidden = nn.Linear(width, hidden, bias=False)
        nn.init.normal_(self.hidden.weight)
        self.projection_scale = 1.0 / math.sqrt(width)
        self.output_logits = nn.Parameter(torch.zeros(hidden))  # softplus: the output weights, >= 0
        self.log_scale = nn.Parameter(torch.zeros(()))
        self.floor_logit = nn.Parameter(torch.zeros(()))

    def distance(self, ea: Tensor, eb: Tensor) -> Tensor:
        """f(|ea - eb|) >= 0 per row, exactly 0 where ea == eb."""
        hidden = (self.hidden((ea - eb).abs() * self.feature_scale) * self.projection_scale).square()
        weights = nn.functional.softplus(self.output_logits) / hidden.shape[1]
        return self.log_scale.exp() * (hidden @ weights)

    @property
    def floor(self) -> Tensor:
        return torch.sigmoid(self.floor_logit)

    def forward(self, ea: Tensor, eb: Tensor) -> Tensor:
        floor = self.floor
        return floor + (1 - floor) * kernel(self.distance(ea, eb))

    @torch.no_grad()
    def calibrate(self, ea: Tensor, eb: Tensor, mean_score: float) -> None:
        """Standardise |ea - eb| by its root mean square over these (train) pairs, and start
        where the pair of median distance scores `mean_score` above a floor at half of it,
        so that training starts from the mean baseline with gradients in every parameter."""
        rms = (ea - eb).abs().double().pow(2).mean(0).sqrt()
        self.feature_scale.copy_(torch.where(rms > 0, 1.0 / rms.clamp_min(1e-12), torch.zeros_like(rms)))
        self.log_scale.zero_()
        typical = float(self.distance(ea.float(), eb.float()).median())
        score = _inside(mean_score)
        floor = START_FLOOR_SHARE * score
        self.floor_logit.fill_(_logit(floor))
        wanted = -math.log((score - floor) / (1 - floor))  # the distance that scores `score`
        if typical > 0:
            self.log_scale.fill_(math.log(wanted / typical))

    @torch.no_grad()
    def start_at(self, score: float) -> None:
        """The mean baseline: every pair of different images scores `score` (an image with
        itself still 1). Distances are scaled so far that nothing but the floor shows."""
        self.floor_logit.fill_(_logit(_inside(score)))
        self.log_scale.fill_(BASELINE_LOG_SCALE)


def kernel(distance: Tensor) -> Tensor:
    """1 at distance 0, falling toward 0. exp(-d) measured better on the sample than a
    heavy-tailed 1 / (1 + d) (test R² 0.56 against 0.45, README "Training for retrieval and
    robustness"), though its gradient vanishes for pairs thrown far."""
    return torch.exp(-distance)


def _inside(score: float) -> float:
    return min(max(score, 1e-4), 1 - 1e-4)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))
