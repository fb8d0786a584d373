"""Stage describe: per-image descriptor vectors of every original and variant. `registry`
lists the descriptors; one module per family computes their vectors (`color`, `texture`,
`edges`, `structure`), `kernels` compares them, `table` holds one image's vectors and
descriptors.parquet, `cache` keeps them per image content, `run` describes a workspace in parallel.
"""
