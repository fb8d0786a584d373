"""artsim: how similar is an AI-generated image to the artwork it was made from?"""

import importlib

__version__ = "0.1.0"


def load(location=".", device="cpu"):
    """The trained model of a workspace (or model folder) as an artsim.app.api.Scorer; see artsim.app.api.

    artsim.app.api is imported by name on first use, for users only: every stage imports this
    package, and no stage scores through the API, so its modules are deps of none of them.
    """
    return importlib.import_module("artsim.app.api").load(location, device)
