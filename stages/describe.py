"""Stage describe: data/ingested + data/generated -> data/descriptors (every registered descriptor of every original
and variant)."""

from __future__ import annotations

import logging
import os
import time

from artsim.core import layout
from artsim.describe.run import describe_manifests
from stages.common import load_params, setup_logging

INGESTED = layout.INGESTED
GENERATED = layout.GENERATED
OUT = layout.DESCRIPTORS

log = logging.getLogger("stages.describe")


def main() -> None:
    setup_logging()
    params = load_params().describe
    started = time.perf_counter()
    # Neither the worker count nor the cache changes the output: both are run-only params.
    report = describe_manifests(INGESTED, GENERATED, params, OUT, cache_root=params.cache,
                                workers=params.workers or os.cpu_count() or 1)
    log.info("described %d images, skipped %d, in %.1f s", report.described, len(report.skipped),
             time.perf_counter() - started)


if __name__ == "__main__":
    main()
