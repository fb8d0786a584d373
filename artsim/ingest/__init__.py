"""Stage ingest: a WikiArt source (`sources/`) read into normalised, deduplicated, labelled and
split images, packed into shards with their manifest (`run`).
"""
