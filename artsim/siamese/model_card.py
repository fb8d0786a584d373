"""models/siamese/README.md: the model card for people (what the score is, data, params,
metrics, limits, how to load it). card.json beside it is the machine-readable twin."""
from __future__ import annotations

import json
from typing import Any

import pandas as pd

from artsim.score.scorer import DescriptorScorer


def training_data_summary(pairs: pd.DataFrame, originals: pd.DataFrame, generated: pd.DataFrame) -> dict[str, Any]:
    """Counts of what the model learned from: pairs by split, paintings, variants and how they were made."""
    def counts(table: pd.DataFrame, column: str) -> dict[str, int]:
        if column not in table:
            return {}
        return {str(k): int(v) for k, v in table[column].astype(str).value_counts().sort_index().items()}

    return {
        "pairs_by_split": counts(pairs, "split"),
        "positive_pairs": int(pairs["positive"].sum()) if "positive" in pairs else None,
        "paintings": len(originals),
        "paintings_by_split": counts(originals, "split"),
        "styles": counts(originals, "style"),
        "variants": len(generated),
        "variants_by_backend": counts(generated, "backend"),
        "variant_models": sorted(generated["model"].dropna().astype(str).unique()) if "model" in generated else [],
        "strengths": sorted(float(s) for s in generated["strength"].unique()) if "strength" in generated else [],
    }


def _figure(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def model_card(card: dict[str, Any], descriptor: DescriptorScorer, data: dict[str, Any]) -> str:
    """The Markdown model card."""
    # Any descriptor candidate may carry weight (artsim.describe.registry); the three below are described in words.
    weights = {"color": 0.0, "texture": 0.0, "edges": 0.0, **descriptor.weights.as_dict()}
    others = ", ".join(
        f"{name} (weight {w:g})" for name, w in weights.items() if name not in ("color", "texture", "edges") and w > 0
    )
    describe = descriptor.describe.model_dump(mode="json")
    metrics = card.get("metrics", {})
    metric_rows = "\n".join(f"| {k} | {_figure(v)} |" for k, v in sorted(metrics.items()))
    styles = ", ".join(f"{k} ({v})" for k, v in data["styles"].items()) or "unknown"
    width = card["embedding_dim"]
    return f"""# artsim siamese similarity model

## What the score is
`f(a, b)` in (0, 1): a ResNet-50 siamese network's estimate of artsim's **descriptor score** of
two images, a weighted mean of classical similarities — colour (HSV histogram
intersection, weight {weights["color"]:g}), texture (13 Haralick features, z-normalised with
statistics of the train paintings, weight {weights["texture"]:g}) and edge layout (Canny
edge density on a grid of {describe["edge_grid"]}x{describe["edge_grid"]} cells, weight {weights["edges"]:g})\
{f"; also {others}" if others else ""}.
It is a learned, differentiable imitation of that hand-made score, **not a measure of human
judgement** of similarity, of style, or of copying. The score is symmetric: f(a, b) == f(b, a).

## Training data
- {data["paintings"]} paintings {data["paintings_by_split"]}; styles: {styles}.
- {data["variants"]} image-to-image variants {data["variants_by_backend"]} \
(models: {", ".join(data["variant_models"]) or "unknown"};
  strengths {data["strengths"]}).
- {sum(data["pairs_by_split"].values())} pairs {data["pairs_by_split"]} \
({data["positive_pairs"]} positive: a painting and its own
  variant; the others pair a painting with another painting's variant). Trained on the train
  pairs, the best epoch chosen on val; test pairs are never seen.

## Parameters
- input: {card["image_size"]}x{card["image_size"]} RGB (whole image resized, aspect not kept), normalised with
  {json.dumps(card["normalisation"])}
- embedding: GeM (p = 3) over the ResNet-50's layer4, averaged over the image and its left-right mirror (a \
mirrored copy embeds exactly as its source), projected to {width} dimensions and L2 normalised
- head: p + (1 - p) exp(-f(|ea - eb|)), computed as 1 - (1 - p)(1 - exp(-f)). \
The floor p = sigmoid(MLP: Linear({2 * width}, {card["head_hidden"]}), ReLU, Linear(1)) on the
  standardised [|ea - eb|, ea * eb]; f = scale x softplus-weighted sum of squares of \
Linear({width}, {card["head_hidden"]}, no bias) on the
  standardised |ea - eb|: f >= 0 and f(0) = 0, so an image scores exactly 1 with itself; \
far from it the score tends to p
- training: `{json.dumps(card.get("params", {}), sort_keys=True)}`
- descriptor score: describe `{json.dumps(describe, sort_keys=True)}` (see descriptor_score.json)

## Metrics
Training and validation (this folder's card.json):

| metric | value |
|---|---|
{metric_rows}

Test-split figures (MSE, MAE, R², Pearson, Spearman against the descriptor score, source
retrieval and pair discrimination beside pHash, dHash and SSIM) are written by the evaluate
stage, which runs after this one: `metrics/evaluate.json`, or `artsim info`.

## Reading a score: the verdict thresholds
The evaluate stage also measures, on the held-out test pairs only, the model scores at which
"derived from" (a test variant and its source, against it and every other original) reaches
90% and 99% precision, with a 95% confidence interval on each precision and the number of pairs
they rest on; `fused`, a probability of "derived" combining the model score and the pHash
similarity, is calibrated on the validation pairs only and judged on the test pairs the same way.
They ship beside this folder as `../verdict.json` (bound to these weights by their SHA-256).
`artsim compare` prints the verdict they give ("derived: likely (score = 0.81 >= 0.74; 90%
precision, 95% CI 0.81–0.98, on 21 derived / 588 unrelated held-out pairs)"), `artsim search`
marks the hits at or above their ranking's 90% threshold; without that file every verdict is
"no verdict: no thresholds shipped with this model". Few held-out pairs make rough thresholds:
each verdict says how many it rests on.

## Limits
- It imitates the descriptor score, including its blind spots: colour and edge layout
  dominate; content, composition and meaning are not measured.
- Trained on {data["paintings"]} paintings and variants made by \
{", ".join(data["variants_by_backend"]) or "unknown"}: other
  generators, photographs or non-painting images are outside what it has seen.
- The images are shrunk to {card["image_size"]} pixels: fine detail does not count.
- Scores of pairs from different runs or models are not comparable.

## How to load it
```
artsim compare variant.jpg painting.jpg --workspace . [--json] [--plot out.png]
artsim search variant.jpg --top-k 5
```
```python
import artsim
scorer = artsim.load("models/siamese")        # or a workspace after `dvc repro`
result = scorer.score("variant.jpg", "painting.jpg")
result.model_score, result.descriptor_score, result.similarities
scorer.embed(["a.jpg", "b.jpg"])               # (2, {width}) embeddings
```
Files: `model.safetensors` (weights, loaded without unpickling), `card.json` (architecture,
input size, params, metrics), `descriptor_score.json` (describe params, weights, texture
statistics: the descriptor score outside the pipeline).
"""
