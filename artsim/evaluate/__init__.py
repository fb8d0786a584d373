"""How well the siamese model does on the test split, beside the descriptor score and its peers.

- regression.py: errors against the descriptor score and the train-mean baseline (pure
  functions; pair AUC, Spearman and retrieval metrics are artsim.core.metrics);
- embedding.py: each image through the trunk once, pairs scored from the embeddings;
- source_retrieval.py: each test variant's source ranked among the whole collection;
- shortlists.py: each query's shortlist of candidates for the costly scorers (head, descriptors, SSIM);
- breakdowns.py: the tables behind the plots, the headline figures of each scorer;
- readings.py: what evaluate reads of each image, once (and which descriptors a stage reads);
- run.py: all of it on the test split (evaluate_on_test).
"""
from artsim.evaluate.predictions import PREDICTION_COLUMNS
from artsim.evaluate.readings import DescribedCollection, described_ids
from artsim.evaluate.run import Evaluation, evaluate_on_test

__all__ = ["PREDICTION_COLUMNS", "DescribedCollection", "Evaluation", "described_ids", "evaluate_on_test"]
