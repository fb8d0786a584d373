"""The search index of a collection of originals: content hashes, model embeddings and pHashes, kept on disk
and brought up to date incrementally (README, "Indexing a collection and bulk use").

Light on purpose: the `artsim` command reads RANKINGS for its options before anything heavy is imported.
"""

# How a search ranks the originals (artsim.index.query): the model, pHash, or both fused.
RANKINGS = ("model", "phash", "fused")
# What counts as an image file in a folder (by suffix).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
