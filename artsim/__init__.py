"""artsim: how similar is an AI-generated image to the artwork it was made from?"""

__version__ = "0.1.0"
