"""`python -m tests.support.stage_with_broken_image STAGE FILE_NAME`: run stages.STAGE with the file
named FILE_NAME decoding at screening and failing whenever training reads it afterwards,
as a file changed mid-run does. Launched as ranks by tests/stages/test_distributed_training.py."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import artsim.finetune.data
from artsim.core.images import ImageRejected


def break_after_screening(name: str) -> None:
    load_rgb = artsim.finetune.data.load_rgb  # screening decodes through artsim.learn.models, not this name

    def load(source: Path, **kwargs: object):
        if Path(source).name == name:
            raise ImageRejected("broken after screening", str(source))
        return load_rgb(source, **kwargs)

    artsim.finetune.data.load_rgb = load


if __name__ == "__main__":
    stage, name = sys.argv[1:3]
    break_after_screening(name)
    importlib.import_module(f"stages.{stage}").main()
