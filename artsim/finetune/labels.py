"""The classes finetune learns: which label values name a class, which classes have enough
train images, and the figures a classification is judged by."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

from artsim.core.errors import NotEnoughData
from artsim.params import FinetuneParams

OTHER = "other"
# Label values that name no class: "unknown" is what ingest writes when the source says
# nothing (artsim.ingest.sources.formats.UNKNOWN; not imported, so that the source readers are no dep of
# this stage). Such images are left out of finetune and counted, never trained as a class.
UNLABELLED = frozenset({"", "unknown"})


class NotEnoughClasses(NotEnoughData):
    """Fewer than two real classes have enough train images: nothing for a classifier to tell apart."""


def class_names(train_labels: Iterable[str], min_class_size: int) -> list[str]:
    """Labels with at least `min_class_size` train images, sorted, then OTHER when some train
    label is too rare to be learnt. Decided by train images alone: what val/test hold never
    shapes the model (a label only they know goes to OTHER, or is left out: class_indices)."""
    counts = Counter(train_labels)
    kept = sorted(label for label, n in counts.items() if n >= min_class_size and label != OTHER)
    needs_other = any(label not in kept for label in counts)
    return [*kept, OTHER] if needs_other else kept


def is_labelled(values: pd.Series) -> pd.Series:
    """Where a label value names a class: not missing, not empty, not `unknown`."""
    text = values.astype("string").str.strip().str.lower()
    return (values.notna() & ~text.isin(UNLABELLED)).fillna(False).astype(bool)


def learnable_classes(labelled: pd.DataFrame, params: FinetuneParams, unlabelled: int = 0) -> list[str]:
    """class_names of the labelled rows (columns split and params.label); NotEnoughClasses when
    fewer than two of them are real classes.

    OTHER does not count: one real class against a bucket of labels too rare to learn is
    "this label or not" with a noise class, not the classification the stage reports on.
    """
    is_train = labelled["split"] == "train"
    train_labels = labelled.loc[is_train, params.label]
    classes = class_names(train_labels, params.min_class_size)
    real = [name for name in classes if name != OTHER]
    if len(real) < 2:
        raise NotEnoughClasses(_too_few_classes(real, train_labels.nunique(), unlabelled, params))
    return classes


def _too_few_classes(real: Sequence[str], train_labels: int, unlabelled: int, params: FinetuneParams) -> str:
    other_label = "genre" if params.label == "style" else "style"
    remedies = [f"set finetune.label to {other_label}"]
    if train_labels > len(real):
        remedies.append("lower finetune.min_class_size")
    remedies.append(f"ingest a source that has {params.label} labels (ingest.source)")
    return (f"finetune.label: {params.label} leaves {len(real)} class(es) with at least finetune.min_class_size "
            f"({params.min_class_size}) train images ({', '.join(real) or 'none'}); {unlabelled} images without a "
            f"{params.label} (unknown or empty) are left out. A classifier needs two classes: {', or '.join(remedies)}")


def check_labels(manifest: pd.DataFrame, params: FinetuneParams) -> None:
    """learnable_classes from the manifest alone (no image opened): a stage's check before any work."""
    labelled = is_labelled(manifest[params.label])
    learnable_classes(manifest[labelled], params, int((~labelled).sum()))


UNSEEN = -1  # class_indices of a val/test label that no class covers


def class_indices(labels: Iterable[str], classes: Sequence[str]) -> list[int]:
    """Each label's class: its own, else OTHER when there is one, else UNSEEN (a label only
    val/test hold, with no OTHER to take it: such images are left out of evaluation)."""
    position = {name: i for i, name in enumerate(classes)}
    fallback = position.get(OTHER, UNSEEN)
    return [position.get(label, fallback) for label in labels]


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int],
                           top_k_hits: Sequence[bool] | None = None) -> dict[str, float | None]:
    """Top-1 accuracy, macro-F1 (over the classes present in truth or prediction) and,
    when given which samples had their class among the top k, top-k accuracy."""
    if len(y_true) == 0:
        return {"accuracy": None, "macro_f1": None, "top5_accuracy": None}
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "top5_accuracy": None if top_k_hits is None else float(np.mean(top_k_hits)),
    }


def majority_accuracy(train_targets: Sequence[int], eval_targets: Sequence[int]) -> float | None:
    """The accuracy of always predicting the most common train class: what top-1 must beat
    to say the classifier learnt anything."""
    if not len(train_targets) or not len(eval_targets):
        return None
    majority = np.bincount(np.asarray(train_targets)).argmax()
    return float(np.mean(np.asarray(eval_targets) == majority))
