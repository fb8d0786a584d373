"""Reading WikiArt in the formats it is distributed in: a folder tree, ArtGAN's CSV lists,
Hugging Face Parquet shards, and the metadata CSVs beside them; any row may be malformed.
"""
