"""The siamese head: a learned pair floor, lifted to exactly 1 for an image with itself.

    score(a, b) = p + (1 - p) * exp(-f(|ea - eb|)),  computed as 1 - (1 - p) * (1 - exp(-f))

p in (0, 1) is the floor: an MLP with a sigmoid over the standardised symmetric features
[|ea - eb|, ea * eb] (the expressive head that regressed the score best, R² 0.66 on the
sample). f >= 0 is a distance with f(0) = 0 exactly: a bias-free linear projection of the
standardised |ea - eb|, squared, summed with non-negative weights (softplus) and a positive
scale. At ea == eb, exp(-0) is exactly 1 and -expm1(-0) exactly 0, so the score is 1 bit for
bit whatever the weights; far from identity it tends to p. Every score lies in [p, 1] within
[0, 1], and both features are symmetric in floating point (|x - y| == |y - x|, x * y == y * x),
so score(a, b) == score(b, a) bit for bit.

A constant floor instead of p (an earlier try) lost R² 0.66 -> 0.56 and recall@1 0.90 -> 0.81:
the distance alone had to carry every pair's score. Here the distance is calibrated so that
the typical train pair sits on the floor's side (START_KERNEL) and p does the regression.
Squares rather than ReLUs in f: a ReLU unit pushed negative on every (non-negative)
difference dies, and a distance whose units all die scores every pair 1.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

# exp(-f) of the median train pair at calibration: small, so that p carries unrelated pairs'
# scores and f only lifts near-copies. Measured on the sample (README "Training for retrieval
# and robustness"): 0.02 beat 0.1 and 0.3 on retrieval (recall@1 0.90 against 0.86, 0.86) at
# R² 0.67 (0.71, 0.68); trained, unrelated test pairs then keep exp(-f) near 0.04.
START_KERNEL = 0.02
# exp(-e^60 x d) is 0 in float32 for any distance d above 1e-24 (and e^60 fits in float32).
BASELINE_LOG_SCALE = 60.0


class DistanceHead(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        # f: 1 / root mean square of each |ea - eb| dimension over the train pairs (calibrate);
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
        # p: the features' mean and 1 / standard deviation over the train pairs (calibrate),
        # fixed during training like the trunk's BatchNorm; what tells pairs apart is a small
        # |ea - eb| next to a large, nearly constant ea * eb, at a scale that depends on the trunk.
        self.register_buffer("floor_mean", torch.zeros(2 * width))
        self.register_buffer("floor_scale", torch.ones(2 * width))
        self.floor_hidden = nn.Linear(2 * width, hidden)
        self.floor_output = nn.Linear(hidden, 1)

    def distance(self, ea: Tensor, eb: Tensor) -> Tensor:
        """f(|ea - eb|) >= 0 per row, exactly 0 where ea == eb."""
        hidden = (self.hidden((ea - eb).abs() * self.feature_scale) * self.projection_scale).square()
        weights = nn.functional.softplus(self.output_logits) / hidden.shape[1]
        return self.log_scale.exp() * (hidden @ weights)

    def floor(self, ea: Tensor, eb: Tensor) -> Tensor:
        """p(a, b) in (0, 1) per row: what the pair scores far from identity."""
        return torch.sigmoid(self._floor_logit(ea, eb))

    def forward(self, ea: Tensor, eb: Tensor) -> Tensor:
        # 1 - (1 - p)(1 - e^-f) rather than p + (1 - p)e^-f: the latter rounds to 1 +- 1 ulp at f = 0.
        return 1 - (1 - self.floor(ea, eb)) * -torch.expm1(-self.distance(ea, eb))

    def _floor_logit(self, ea: Tensor, eb: Tensor) -> Tensor:
        features = (floor_features(ea, eb) - self.floor_mean) * self.floor_scale
        return self.floor_output(torch.relu(self.floor_hidden(features))).squeeze(1)

    @torch.no_grad()
    def calibrate(self, ea: Tensor, eb: Tensor, mean_score: float) -> None:
        """Standardise both parts' inputs over these (train) pairs, and start where every pair
        scores about `mean_score`: the floor constant at the value that, with the median pair's
        exp(-f) at START_KERNEL, gives it; the distance's scale set so the median pair is there."""
        rms = (ea - eb).abs().double().pow(2).mean(0).sqrt()
        self.feature_scale.copy_(_reciprocal(rms))
        features = floor_features(ea.double(), eb.double())
        self.floor_mean.copy_(features.mean(0))
        self.floor_scale.copy_(_reciprocal(features.std(0, correction=1 if len(features) > 1 else 0)))
        self.log_scale.zero_()
        typical = float(self.distance(ea.float(), eb.float()).median())
        score = _inside(mean_score)
        # (Below a mean of about 0.18 the floor is half of it, the median pair then under START_KERNEL.)
        floor = _inside(max((score - START_KERNEL) / (1 - START_KERNEL), score / 2))
        self._constant_floor(floor)
        if typical > 0:
            wanted = -math.log((score - floor) / (1 - floor))  # the distance that scores `score`
            self.log_scale.fill_(math.log(wanted / typical))

    @torch.no_grad()
    def start_at(self, score: float) -> None:
        """The mean baseline: every pair of different images scores `score` (an image with
        itself still 1). Distances are scaled so far that nothing but the floor shows."""
        self._constant_floor(_inside(score))
        self.log_scale.fill_(BASELINE_LOG_SCALE)

    def _constant_floor(self, floor: float) -> None:
        nn.init.zeros_(self.floor_output.weight)
        self.floor_output.bias.fill_(math.log(floor / (1 - floor)))


def floor_features(ea: Tensor, eb: Tensor) -> Tensor:
    """The floor's input, symmetric in ea, eb bit for bit."""
    return torch.cat([(ea - eb).abs(), ea * eb], dim=1)


def _reciprocal(spread: Tensor) -> Tensor:
    # A dimension that never varies over the train pairs carries nothing: weighted 0.
    return torch.where(spread > 0, 1.0 / spread.clamp_min(1e-12), torch.zeros_like(spread))


def _inside(score: float) -> float:
    return min(max(score, 1e-4), 1 - 1e-4)
