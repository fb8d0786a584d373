"""Stage index: the search index of the workspace's originals (data/index), brought up to date incrementally.

data/index is a persistent output: `dvc repro` runs this stage on the previous index, so an unchanged
original is not read again, a new one is embedded, a removed one leaves, and a new model re-embeds
(keeping the content hashes). `artsim search` uses it when it was built with the model it loads.
"""
from __future__ import annotations

import logging
from pathlib import Path

from artsim.core import layout
from artsim.index.build import update_index
from artsim.index.collection import workspace_collection
from artsim.index.embedder import model_folder_embedder
from artsim.learn import model_folder
from stages.common import load_params, setup_logging, write_json

MODEL_DIR = model_folder.MODEL_DIR
INDEX_DIR = layout.INDEX
REPORT = layout.metrics_json("index")

log = logging.getLogger("stages.index")


def main() -> None:
    setup_logging()
    params = load_params()
    _, report = update_index(
        INDEX_DIR, workspace_collection(Path(".")), model_folder_embedder(MODEL_DIR), params.index.batch_size
    )
    # The metrics say what the index is; how much this run read and embedded depends on the previous
    # index (a persistent output), so it is logged.
    write_json(REPORT, {"originals": report.originals, "without_vector": len(report.skipped)})
    log.info("index: %d originals: %d unchanged (not read), %d read, %d embedded", report.originals,
             report.unchanged, report.hashed, report.embedded)


if __name__ == "__main__":
    main()
