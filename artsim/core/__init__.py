"""What every stage uses, importing nothing above it: decoding untrusted images, tar shards,
atomic files and checked vector files, worker processes, torchrun ranks, cache folders, safe
paths, the errors a stage reports, and the metrics (AUC, Spearman, retrieval) several stages share.
"""
