"""The DVC stages' entry points: `python -m stages.<name>`, one per stage of dvc.yaml.

Every stage computes on pinned CPU kernels (artsim.core.kernels): set here, before any stage
module imports torch, numpy or onnxruntime. ARTSIM_NATIVE_KERNELS=1 opts out.
"""
from artsim.core.kernels import pin_cpu_kernels

pin_cpu_kernels()
