"""Errors a stage turns into one line on stderr (`sys.exit(message)`) instead of a traceback."""
from __future__ import annotations


class NotEnoughData(ValueError):
    """What is left of the data after filtering cannot feed this stage (no train pair, one class).

    The message is one line: what is missing and which param or source to change. Raised
    before the stage's real work, so nothing half-made is left behind.
    """


class UserError(Exception):
    """A problem the user of `artsim` can fix (a path, an image, a missing model): one line, no traceback.

    Here, not in artsim.app.api, so that the command can report one without importing torch."""
