"""The val pairs fused's calibration (artsim.evaluate.calibration) is fitted on: plain and altered.

Plain: each val variant with its source (derived) and with the unrelated originals the held-out pairs give it
(artsim.evaluate.held_out, bounded by `negatives_per_query`). Altered: the very same pairs with the val variant
under each alteration of the held-out transformed set (artsim.core.alterations.EVALUATION: mirror, crop_70, ...),
altered and read by artsim.evaluate.transformed's functions and scored by the scorers' exact scores
(artsim.evaluate.scorer_inputs), as the altered test queries are: (1 + alterations) times the plain pairs.

Why: on plain pairs pHash alone separates derived from unrelated, so a fit on them alone leans on pHash and fused
fails exactly where pHash fails (a mirrored copy). The altered pairs show the fit that a high model score with a
low pHash similarity is still a copy. Only val variants are altered and only val pairs scored: no test pair or test
variant reaches the fit. Every alteration is deterministic and the pairs are seeded, so the data are too.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from artsim.core.alterations import Alteration
from artsim.evaluate.held_out import HeldOutPairs
from artsim.evaluate.scorer_inputs import ScorerInputs, exact_scorers
from artsim.evaluate.source_retrieval import sampled_rows
from artsim.evaluate.transformed import AlteredReaders, altered_inputs

KIND = "kind"  # of each fitting pair: PLAIN or the name of the alteration its val variant is under
PLAIN = "plain"
POSITIVE = "positive"


@dataclass(frozen=True)
class ValPairs:
    """The held-out val pairs (artsim.evaluate.held_out.HeldOutPairs) and what their variants are altered and scored
    against: the candidates' readings (ScorerInputs, in `candidate_ids` order; every pair's original among them)."""

    pairs: HeldOutPairs
    candidates: ScorerInputs
    candidate_ids: Sequence[str]
    readers: AlteredReaders


def calibration_variants(val: pd.DataFrame, at_most: int | None, seed: int) -> pd.DataFrame:
    """The derived val pairs (`val`'s positive rows) of at most `at_most` of its variants, a seeded sample (None:
    all): what the calibration is fitted on. Three coefficients need no more; bounded, the fit and the reading of
    its variants under every alteration cost at the study's scale what they cost at a few thousand paintings."""
    derived = val[val["positive"].astype(bool)]
    variants = np.sort(derived["generated_id"].astype(str).unique())
    kept = variants[sampled_rows(len(variants), at_most, seed)]
    return derived[derived["generated_id"].astype(str).isin(kept)]


def fitting_scores(plain: Mapping[str, np.ndarray], val: ValPairs, alterations: Mapping[str, Alteration]
                   ) -> dict[str, np.ndarray]:
    """The `plain` scores of the val pairs ("positive" and each scorer's, in `val.pairs` order) and the same
    scorers' scores of those pairs under each of `alterations`, one after the other; KIND says which is which."""
    parts = [{**plain, KIND: np.full(len(plain[POSITIVE]), PLAIN)}]
    parts += [altered_scores(val, name, alteration, scorers=[name for name in plain if name != POSITIVE])
              for name, alteration in alterations.items()]
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def altered_scores(val: ValPairs, kind: str, alteration: Alteration, scorers: Sequence[str]) -> dict[str, np.ndarray]:
    """Each of `scorers`' exact score of the val pairs with their variant under `alteration` (each variant altered
    once); the pairs of a variant that does not decode are left out (altered_images logs it)."""
    queries = list(val.pairs.variants["generated_path"])
    # Only the model and the hashes score a fitting pair: the descriptors and grey thumbnails are not read.
    kept, inputs = altered_inputs(queries, alteration, replace(val.readers, describe=None, with_greys=False))
    row_of_query = np.full(len(queries), -1, dtype=np.int64)
    row_of_query[kept] = np.arange(len(kept))
    rows = row_of_query[val.pairs.query_rows]
    altered = rows >= 0
    column_of = {str(image_id): column for column, image_id in enumerate(val.candidate_ids)}
    paired, ids = val.pairs.columns[altered], val.pairs.candidates["id"].to_numpy()
    column_of_original = np.zeros(len(ids), dtype=np.int64)  # of the originals paired: only they need a column
    used = np.unique(paired)
    column_of_original[used] = [column_of[str(ids[original])] for original in used]
    columns = column_of_original[paired]
    exact = exact_scorers(val.readers.model, inputs, val.candidates, None, val.readers.device)
    return {POSITIVE: val.pairs.positive[altered],
            **{name: exact[name](rows[altered], columns[:, None]).reshape(len(columns)) for name in scorers},
            KIND: np.full(len(columns), kind)}


def pairs_by_kind(fitting: Mapping[str, np.ndarray]) -> dict[str, int]:
    """How many derived and unrelated fitting pairs are plain and how many altered (under any alteration), and under
    how many alterations; scores without KIND are plain pairs."""
    positive = np.asarray(fitting[POSITIVE], dtype=bool)
    plain = np.asarray(fitting.get(KIND, np.full(len(positive), PLAIN))) == PLAIN
    kinds = set(np.asarray(fitting.get(KIND, [])).tolist()) - {PLAIN}
    return {"derived_plain": int((positive & plain).sum()), "unrelated_plain": int((~positive & plain).sum()),
            "derived_altered": int((positive & ~plain).sum()), "unrelated_altered": int((~positive & ~plain).sum()),
            "n_alterations": len(kinds)}
