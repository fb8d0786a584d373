"""DVC stage describe: colour, texture and edge descriptors of every original and variant."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from artsim.descriptors import describe_manifests, write_descriptors
from stages.common import load_params, setup_logging

INGESTED = Path("data/ingested")
GENERATED = Path("data/generated")
OUT = Path("data/descriptors")

log = logging.getLogger("stages.describe")


def main() -> None:
    setup_logging()
    params = load_params()
    started = time.perf_counter()
    # Worker count does not change the output, so it is not a param.
    table, skipped = describe_manifests(INGESTED, GENERATED, params.describe, workers=os.cpu_count() or 1)
    write_descriptors(table, skipped, OUT)
    log.info("described %d images, skipped %d, in %.1f s", len(table), len(skipped), time.perf_counter() - started)


if __name__ == "__main__":
    main()
