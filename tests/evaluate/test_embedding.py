"""artsim.evaluate.embedding: pairs scored from embeddings computed once per image."""
from __future__ import annotations

import numpy as np
import torch

from artsim.evaluate.embedding import score_embedding_pairs
from artsim.learn.models import DEFAULT_EMBEDDING_DIM, SiameseRegressor


def test_pairs_given_as_rows_of_the_embeddings_score_as_the_gathered_pairs_do_bit_for_bit():
    """evaluate scores hundreds of thousands of (variant, original) pairs by row numbers: the embeddings are gathered
    a call at a time, and each call's scores are those of the pairs gathered whole beforehand."""
    torch.manual_seed(0)
    model = SiameseRegressor(head_hidden=8).eval()
    embeddings = torch.nn.functional.normalize(torch.randn(7, DEFAULT_EMBEDDING_DIM), dim=1)
    left, right = torch.tensor([0, 3, 3, 6, 1]), torch.tensor([2, 2, 5, 0, 4])
    cpu = torch.device("cpu")
    gathered = score_embedding_pairs(model, embeddings[left], embeddings[right], cpu, pairs_per_call=2)
    by_rows = score_embedding_pairs(model, embeddings, embeddings, cpu, pairs_per_call=2, rows=(left, right))
    assert by_rows.dtype == np.float64 and by_rows.tobytes() == gathered.tobytes()
    assert len(set(by_rows.tolist())) > 1  # the pairs differ: the rows are followed, not one pair repeated
    empty = torch.zeros(0, dtype=torch.long)
    assert score_embedding_pairs(model, embeddings, embeddings, cpu, rows=(empty, empty)).shape == (0,)
