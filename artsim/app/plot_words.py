"""The words of the comparison picture (artsim.app.difference): what its scores and verdict mean in plain
language, why the model and the descriptors disagree where they do, and the file formats it is written in.

Light on purpose (no numpy, no matplotlib): the command checks `--plot`'s suffix with it before any work.
"""
from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Suffix -> matplotlib's format name: the suffix decides the bytes, never PNG under a .jpg name.
PLOT_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".svg": "svg", ".pdf": "pdf"}
# Below this gap the model's and the descriptors' scores count as agreeing (both in [0, 1]).
AGREEMENT = 0.1
# A part this far below (above) the descriptor score is one the descriptors disagree (agree) on.
PART_GAP = 0.1
COLOUR_GLOSS = "colour difference (ΔE, CIELAB): under ~2 is invisible, over ~10 obvious"
EDGE_GLOSS = "edge difference: share of the region's pixels that are an edge in one image only"
SCORES_GLOSS = ("Scores run from 0 (unrelated) to 1 (the same image). The descriptor score is a weighted mean of "
                "classical measures (the bars below it); the model is a neural network trained to predict it.")
# Each descriptor (artsim.params.DESCRIPTOR_NAMES) in words a non-expert reads. Here, not in the describe
# registry: display words must not change the deps of every stage from describe on (a retrain).
PLAIN_NAMES = {"color": "colour palette", "texture": "texture", "edges": "where the edges are",
               "lab": "colour by region", "lbp": "fine texture", "orientation": "stroke directions",
               "phash": "overall structure", "layout": "composition (light and dark)"}
NEAR = "close"
FAR = "far apart"


def plot_format(path: Path) -> str:
    """matplotlib's format for `path`'s suffix; ValueError naming the accepted suffixes otherwise."""
    found = PLOT_FORMATS.get(path.suffix.lower())
    if found is None:
        raise ValueError(f"{path.name}: the picture's format comes from its suffix; "
                         f"give one of {', '.join(PLOT_FORMATS)}")
    return found


def plot_path(text: str) -> Path:
    """argparse type of `--plot`: refused (status 2) before any work when the suffix names no format."""
    path = Path(text)
    try:
        plot_format(path)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return path


def verdict_words(payload: Mapping[str, Any]) -> str:
    """The verdict of compare's payload (artsim.app.api.compare_payload) as a sentence a non-expert reads."""
    score, threshold, precision = payload["model_score"], payload.get("threshold"), payload.get("precision")
    verdict = payload.get("verdict", "none")
    if verdict == "none" or threshold is None or precision is None:
        return f"No verdict: {payload.get('verdict_text', '').removeprefix('no verdict: ')}"
    rule = (f"{precision:.0%} of the held-out pairs scoring at least {threshold:.2f} were truly derived; "
            f"measured on {payload['pairs']} pairs ({payload['positives']} derived, {payload['negatives']} unrelated)")
    if "few pairs" in payload.get("verdict_text", ""):
        rule += ": few pairs, a rough threshold"
    if verdict == "no_evidence":
        return (
            f"No evidence that one was made from the other: model score {score:.2f} is below {threshold:.2f}.\n({rule})"
        )
    strength = "Very likely" if verdict == "very_likely" else "Likely"
    return f"{strength} made from one another: model score {score:.2f} is at least {threshold:.2f}.\n({rule})"


def reading(payload: Mapping[str, Any]) -> str:
    """One line: how the model judges the pair, and whether (and on which parts) the descriptors agree."""
    model, descriptor = payload["model_score"], payload["descriptor_score"]
    threshold = payload.get("threshold")
    near = model >= (threshold if threshold is not None else 0.5)
    line = f"the model finds them {NEAR if near else FAR} ({model:.2f})"
    parts = {name: value for name, value in payload["similarities"].items() if payload["weights"].get(name, 0) > 0}
    low = _named(sorted((v, n) for n, v in parts.items() if v < descriptor - PART_GAP))
    high = _named(sorted(((v, n) for n, v in parts.items() if v > descriptor + PART_GAP), reverse=True))
    if abs(model - descriptor) <= AGREEMENT:
        line += f"; the descriptors agree ({descriptor:.2f})"
        return line + (f", though less on {low}" if low else "")
    if descriptor < model:
        return line + f"; the descriptors score them lower ({descriptor:.2f})" + (f", mostly on {low}" if low else "")
    return line + f"; the descriptors score them higher ({descriptor:.2f})" + (f", mostly on {high}" if high else "")


def plain_name(descriptor: str) -> str:
    return PLAIN_NAMES.get(descriptor, descriptor)


def _named(ranked: list[tuple[float, str]]) -> str:
    """The first two parts of `ranked` in plain words: "colour palette (0.42) and texture (0.51)"."""
    words = [f"{plain_name(name)} ({value:.2f})" for value, name in ranked[:2]]
    return " and ".join(words)
