"""Stage params: the whole of params.yaml checked before DVC removes any stage's outputs.

DVC deletes a stage's outputs before it runs the stage, so a bad value caught by the stage itself
would cost its outputs. This stage comes first: it depends on every key of params.yaml (run-only
ones too) and every other stage depends on its block's file here, so `dvc repro` and
`dvc exp run` run it before the others and stop at a bad value. Its output persists (DVC never
deletes it), so a failed check leaves it as it was. Each file holds the block's values that
decide results: it changes only when they do, so a change reruns only the stages it decides,
and a run-only key reruns nothing but this check.
"""
from __future__ import annotations

import sys

from artsim.core import layout
from artsim.generate.backends import check_params
from artsim.params import ParamsError, result_blocks
from stages.common import load_params, setup_logging, write_json


def main() -> None:
    setup_logging()
    params = load_params()
    try:  # generate's rules beyond the schema (templates, the backend's own checks)
        check_params(params.generate)
    except ParamsError as exc:
        sys.exit(str(exc))
    for block, values in result_blocks(params).items():
        write_json(layout.validated_params(block), values)


if __name__ == "__main__":
    main()
