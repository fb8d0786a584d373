"""Stage evaluate: the siamese model on the test split: errors against the mean-score baseline,
pair discrimination and source retrieval beside the descriptor score and its peers (pHash,
dHash, SSIM), every scorer's thresholds on held-out pairs with fused's calibration (models/verdict.json), and the
plots behind them."""
from __future__ import annotations

import pandas as pd

from artsim.core import layout
from artsim.core.shards import manifest_images
from artsim.describe.table import read_descriptors
from artsim.evaluate import PREDICTION_COLUMNS, DescribedCollection, described_ids, evaluate_on_test
from artsim.evaluate.breakdowns import DEFAULT_MRR
from artsim.evaluate.gallery import write_gallery
from artsim.evaluate.headline import headline
from artsim.evaluate.verdict import ShippedThresholds
from artsim.learn import model_folder
from artsim.learn.pair_images import resolve_pairs
from artsim.score.scorer import FILE_NAME as DESCRIPTOR_SCORE_FILE
from artsim.score.scorer import DescriptorScorer
from stages.common import load_params, setup_logging, write_json

INGESTED = layout.INGESTED
GENERATED = layout.GENERATED
PAIRS = layout.PAIRS_TABLE
DESCRIPTORS = layout.DESCRIPTORS_TABLE
MODEL_DIR = model_folder.MODEL_DIR
REPORT = layout.metrics_json("evaluate")
PLOTS = layout.plots_dir("evaluate")
# Every scorer's thresholds, beside the model folder (the siamese stage owns models/siamese itself).
VERDICT = layout.VERDICT


def main() -> None:
    setup_logging()
    params = load_params()
    model, card = model_folder.load(MODEL_DIR)
    originals = pd.read_parquet(INGESTED / layout.MANIFEST)
    collection = originals.assign(path=manifest_images(originals, INGESTED))
    pairs = resolve_pairs(pd.read_parquet(PAIRS), originals, pd.read_parquet(GENERATED / layout.MANIFEST),
                          INGESTED, GENERATED)
    descriptors = read_descriptors(DESCRIPTORS, described_ids(pairs, collection))
    # The weights the pairs were scored with (score.weights, or those `fit` learned) and the texture
    # statistics they used, as the score stage saved them: read, never fitted again.
    saved = DescriptorScorer.load(PAIRS.parent / DESCRIPTOR_SCORE_FILE)
    evaluation = evaluate_on_test(
        model, pairs, collection, card["image_size"], params.evaluate.batch_size,
        descriptor_scorer=DescribedCollection(descriptors, saved.texture, saved.weights, saved.describe),
        loader_workers=params.evaluate.loader_workers,
        shortlist=params.evaluate.shortlist,
        max_sampled_queries=params.evaluate.max_sampled_queries,
        calibration_max_queries=params.evaluate.calibration_max_queries,
        negatives_per_query=params.evaluate.negatives_per_query,
        seed=params.seed,
    )
    write_json(REPORT, evaluation.report)
    write_json(layout.HEADLINE, headline(evaluation.report))
    PLOTS.mkdir(parents=True, exist_ok=True)
    evaluation.predictions[PREDICTION_COLUMNS].to_csv(PLOTS / "predictions.csv", index=False)
    # A result (which ranking won on held-out queries, plain and transformed, and by what); the app reads it from
    # VERDICT, bound to the weights.
    write_json(PLOTS / "search.json", {"default_by": evaluation.search_default_by,
                                       DEFAULT_MRR: evaluation.report[DEFAULT_MRR]})
    for name, table in evaluation.tables.items():
        (PLOTS / name).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(PLOTS / name, index=False)
    ShippedThresholds.of(model_folder.weights_hash(MODEL_DIR), evaluation.thresholds,
                         evaluation.search_default_by, evaluation.calibration).save(VERDICT)
    write_gallery(evaluation.predictions, PLOTS / "gallery.png", weights=saved.weights.as_dict())


if __name__ == "__main__":
    main()
