"""artsim.evaluate.embedding: pairs scored from embeddings computed once per image."""
from __future__ import annotations

import numpy as np
import torch

from artsim.evaluate.embedding import PAIRS_PER_BLOCK, PAIRS_PER_CALL, score_embedding_pairs
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


def test_a_block_scored_a_call_at_a_time_scores_as_at_once_bit_for_bit():
    """The head scores a block of pairs PAIRS_PER_CALL at a time (what bounds its transients): the very bits of the
    block in one call, so the call's size is memory's business only."""
    torch.manual_seed(1)
    model = SiameseRegressor(head_hidden=64).eval()
    with torch.no_grad():
        for weights in (model.head.floor_output.weight, model.head.output_logits):
            weights.normal_()
    embeddings = torch.nn.functional.normalize(torch.randn(600, DEFAULT_EMBEDDING_DIM), dim=1)
    rows = (torch.randint(0, 600, (PAIRS_PER_BLOCK,)), torch.randint(0, 600, (PAIRS_PER_BLOCK,)))
    cpu = torch.device("cpu")
    at_once = score_embedding_pairs(model, embeddings, embeddings, cpu, pairs_per_call=PAIRS_PER_BLOCK, rows=rows)
    by_calls = score_embedding_pairs(model, embeddings, embeddings, cpu, rows=rows)
    assert PAIRS_PER_CALL < PAIRS_PER_BLOCK and by_calls.tobytes() == at_once.tobytes()
    assert np.unique(at_once).size > PAIRS_PER_BLOCK // 2  # pairs scored apart, not one floor
