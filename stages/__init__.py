"""The DVC stages' entry points: `python -m stages.<name>`, one per stage of dvc.yaml."""
