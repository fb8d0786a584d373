"""Stage describe: per-image descriptor vectors of every original and variant. `registry`
lists the candidate descriptors; `descriptors` and `candidate_vectors` compute them, `kernels`
compares them, `cache` keeps them per image content, `run` describes a workspace in parallel.
"""
