"""The comparison picture's words: the verdict as a sentence, and the line saying whether and on which
descriptor parts the model and the descriptors disagree."""
from __future__ import annotations

from artsim.app.plot_words import PLAIN_NAMES, reading, verdict_words
from artsim.params import DESCRIPTOR_NAMES

WEIGHTS = {"color": 0.3, "texture": 0.3, "layout": 0.4}


def payload(model: float, similarities: dict[str, float], threshold: float | None = 0.7, **verdict) -> dict:
    descriptor = sum(WEIGHTS[n] * v for n, v in similarities.items())
    return {"model_score": model, "descriptor_score": descriptor, "similarities": similarities, "weights": WEIGHTS,
            "threshold": threshold, "precision": 0.99, "pairs": 420, "positives": 210, "negatives": 210,
            "verdict": "very_likely", "verdict_text": "derived: very likely (...)", **verdict}


def test_the_model_close_and_the_descriptors_lower_names_the_parts_they_disagree_on() -> None:
    line = reading(payload(0.9, {"color": 0.2, "texture": 0.7, "layout": 0.75}))
    assert line.startswith("the model finds them close (0.90); the descriptors score them lower (0.57)")
    assert line.endswith("mostly on colour palette (0.20)")


def test_agreeing_scores_say_so_and_a_higher_descriptor_score_names_its_strongest_parts() -> None:
    assert reading(payload(0.8, {"color": 0.8, "texture": 0.8, "layout": 0.8})) == \
        "the model finds them close (0.80); the descriptors agree (0.80)"
    line = reading(payload(0.3, {"color": 0.5, "texture": 0.5, "layout": 0.95}))
    assert line.startswith("the model finds them far apart (0.30); the descriptors score them higher (0.68)")
    assert line.endswith("mostly on composition (light and dark) (0.95)")


def test_a_part_without_weight_is_never_blamed() -> None:
    line = reading(payload(0.9, {"color": 0.2, "texture": 0.7, "layout": 0.75}) | {"weights": WEIGHTS | {"color": 0.0}})
    assert "colour" not in line


def test_the_verdict_reads_as_a_sentence_with_its_evidence() -> None:
    text = verdict_words(payload(0.9, {"color": 1, "texture": 1, "layout": 1}))
    assert text.startswith("Very likely made from one another: model score 0.90 is at least 0.70.")
    assert "99% of the held-out pairs scoring at least 0.70 were truly derived" in text and "rough" not in text
    low = verdict_words(payload(0.5, {"color": 1, "texture": 1, "layout": 1}, verdict="no_evidence",
                                verdict_text="no evidence (...; few pairs, a rough threshold)"))
    assert low.startswith("No evidence that one was made from the other: model score 0.50 is below 0.70.")
    assert low.endswith("a rough threshold)")
    none = verdict_words(payload(0.5, {"color": 1}, threshold=None, verdict="none",
                                 verdict_text="no verdict: no thresholds shipped with this model"))
    assert none == "No verdict: no thresholds shipped with this model"


def test_every_descriptor_has_plain_words_and_no_two_read_alike() -> None:
    assert set(PLAIN_NAMES) == set(DESCRIPTOR_NAMES)
    assert len(set(PLAIN_NAMES.values())) == len(PLAIN_NAMES)
