"""Stage generate: data/ingested -> data/generated/{shards/,manifest.parquet,failures.csv} + metrics/generate.json.

Runs alone or as ranks of `torchrun --nproc-per-node N -m stages.generate` (also across
machines sharing the repository's filesystem); with `generate.processes` > 1 and no torchrun
around it, it relaunches itself under torchrun. Every rank makes its share of the missing
variants into the store; rank 0 then assembles the output.
"""
from __future__ import annotations

import logging
import shutil
import sys

import pandas as pd

from artsim.core import layout
from artsim.core.distributed import process_group, ranks_from_env
from artsim.generate.assemble import (
    assemble,
    failed_by_reason_table,
    failures_table,
    generate_metrics,
    run_tallies,
    why_nothing_was_generated,
)
from artsim.generate.backends import check_params
from artsim.generate.backends.base import InputError
from artsim.generate.run import generate
from artsim.generate.store import VariantStore
from artsim.params import ParamsError
from stages.common import load_params, relaunch_under_torchrun, setup_logging, write_json

INGESTED = layout.INGESTED
OUT_DIR = layout.GENERATED
METRICS = layout.metrics_json("generate")
PLOTS = layout.plots_dir("generate")

log = logging.getLogger("stages.generate")


def main() -> None:
    setup_logging()
    params = load_params()
    config = params.generate
    try:  # the backend's own checks, before any work (and before relaunching as ranks)
        check_params(config)
    except ParamsError as exc:
        sys.exit(str(exc))
    relaunch_under_torchrun(config.processes, "stages.generate", config.device)
    ranks = ranks_from_env()
    originals = pd.read_parquet(INGESTED / layout.MANIFEST)
    with process_group(ranks):
        try:
            result = generate(originals, INGESTED, config, params.seed, ranks)
        except (InputError, ParamsError) as exc:  # inputs that params validation could not see
            sys.exit(str(exc))
        if not ranks.is_main:
            return
        shutil.rmtree(OUT_DIR, ignore_errors=True)
        manifest = assemble(result, VariantStore(config.store), OUT_DIR)
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        manifest.to_parquet(OUT_DIR / layout.MANIFEST, index=False)
        failures_table(result).to_csv(OUT_DIR / "failures.csv", index=False)
        write_json(METRICS, generate_metrics(result, len(manifest)))
        PLOTS.mkdir(parents=True, exist_ok=True)
        failed_by_reason_table(result).to_csv(PLOTS / "failed_by_reason.csv", index=False)
    log.info("%d variants: %s", len(manifest), run_tallies(result))
    if manifest.empty:  # nothing downstream could learn from or score: stop here, saying why
        sys.exit(why_nothing_was_generated(result, config, len(originals)))


if __name__ == "__main__":
    main()
