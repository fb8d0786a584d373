"""The workspace's data as a product: a Hugging Face dataset (`export_dataset`) and single images
(`export_image`), for people outside the pipeline. Reads the stage outputs; writes nothing in them."""
from artsim.export.dataset import ExportReport, ShardLimits, export_dataset
from artsim.export.image import export_image, find_image

__all__ = ["ExportReport", "ShardLimits", "export_dataset", "export_image", "find_image"]
