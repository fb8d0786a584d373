"""The search index of a collection of originals: content hashes, model embeddings and pHashes, kept on disk
and brought up to date incrementally (README, "Indexing a collection and bulk use").

Light on purpose: the `artsim` command reads RANKING_NAMES for its options before anything heavy is imported.
"""

# The names of artsim.index.query.RANKINGS (the registry; a test keeps both equal), the first the default:
# how a search ranks the originals, by the model, pHash, or both fused.
RANKING_NAMES = ("model", "phash", "fused")
# Originals re-ranked by the model's head after the cosine shortlist; hits per query.
DEFAULT_SHORTLIST = 100
DEFAULT_TOP_K = 5
# What counts as an image file in a folder (by suffix).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
