"""The on-disk cache of frozen-bottom features (artsim.learn.features): one .npy per unique image,
keyed by the image's content and by everything else that decides its features, checked
before use and healed when damaged.
"""
from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import PIL
import torch
import torchvision
from torch import Tensor, nn
from tqdm import tqdm

from artsim.core.images import ImageFile, ImageRejected, file_hash, write_atomically
from artsim.learn.features import embed_images

log = logging.getLogger(__name__)


def module_digest(module: nn.Module, *extra: object) -> str:
    """sha256 over a module's parameters and buffers (names, shapes, bytes) and `extra`."""
    digest = hashlib.sha256(repr(extra).encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(repr(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def feature_key(
    bottom: nn.Module, image_size: int, normalisation: object, device: torch.device, channels_last: bool
) -> str:
    """Everything besides the image that decides the bottom's features: its weights, the input
    (size, normalisation, resizing) and how they are computed. Kernels differ between library
    versions, device types and memory layouts in their last bits, and a cache must not mix
    them. (Precision decides the stored dtype, which names the store's folder too.)"""
    computed_by = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "pillow": PIL.__version__,  # decodes and resizes
        "device": device.type,
        "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
        "channels_last": channels_last,
    }
    return module_digest(bottom, image_size, normalisation, "resize", sorted(computed_by.items()))


@torch.no_grad()
def output_shape(module: nn.Module, image_size: int, device: torch.device) -> tuple[int, ...]:
    """The shape of `module`'s output for one image (without the batch dimension)."""
    modes = [(layer, layer.training) for layer in module.modules()]
    module.eval()  # a forward pass in training mode would move BatchNorm's running statistics
    try:
        return tuple(module(torch.zeros(1, 3, image_size, image_size, device=device)).shape[1:])
    finally:
        for layer, training in modes:
            layer.training = training


def open_feature_store(root: Path, bottom: nn.Module, image_size: int, normalisation: object,
                       device: torch.device, channels_last: bool, dtype: torch.dtype) -> "FeatureStore":
    """The store of `bottom`'s features as this run computes them, checking entries against
    the shape the bottom gives."""
    return FeatureStore(root, feature_key(bottom, image_size, normalisation, device, channels_last), dtype,
                        output_shape(bottom, image_size, device))


# numpy has no bfloat16: such features are stored as their raw 16-bit patterns.
_STORED_AS = {torch.float32: torch.float32, torch.float16: torch.float16, torch.bfloat16: torch.int16}
NPY_HEADER_BYTES = 128  # what np.save writes before the data for a short header (format 1.0)
_NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


class FeatureStore:
    """Features of single images under `root/<model key>-<dtype>/<image digest[:2]>/<image digest>.npy`.

    One file per image, written to a temporary name, fsynced and renamed, so an interrupted
    run leaves only whole files and the next run computes just the rest. Nothing is unpickled.
    A mixed-precision run keeps its features in its compute dtype: the trained stages
    would cast them to it anyway, and the files (read every epoch) are half the size.

    Entries are checked before use (`usable`: the .npy header's dtype and shape, and the
    file's size against them), so an empty, truncated or foreign file is deleted and
    computed again instead of crashing or silently dropping pairs; `healed` counts them.
    """

    def __init__(self, root: Path, model_key: str, dtype: torch.dtype = torch.float32,
                 shape: tuple[int, ...] | None = None) -> None:
        if dtype not in _STORED_AS:
            raise ValueError(f"features can be stored as {sorted(map(str, _STORED_AS))}, not {dtype}")
        self.dtype = dtype
        self.shape = shape  # None: any shape is taken
        self.stored_dtype = torch.empty(0, dtype=_STORED_AS[dtype]).numpy().dtype
        self.folder = Path(root) / f"{model_key}-{str(dtype).removeprefix('torch.')}"
        self.healed = 0

    def path(self, image_digest: str) -> Path:
        return self.folder / image_digest[:2] / f"{image_digest}.npy"

    def has(self, image_digest: str) -> bool:
        """Whether a sound entry is stored (a damaged one is left as it is)."""
        path = self.path(image_digest)
        return path.is_file() and self.damage(path) is None

    def usable(self, image_digest: str) -> bool:
        """Whether a sound entry is stored; a damaged one is logged, deleted and counted."""
        path = self.path(image_digest)
        if not path.is_file():
            return False
        problem = self.damage(path)
        if problem is None:
            return True
        log.warning("feature cache: %s is damaged (%s); computing it again", path, problem)
        path.unlink(missing_ok=True)
        self.healed += 1
        return False

    def damage(self, path: Path) -> str | None:
        """What is wrong with an entry, from its header and size (no data is read); None when nothing."""
        try:
            with open(path, "rb") as handle:
                version = np.lib.format.read_magic(handle)
                if version not in _NPY_HEADER_READERS:
                    return f"unknown .npy version {version}"
                shape, _, dtype = _NPY_HEADER_READERS[version](handle)
                header_size = handle.tell()
            size = path.stat().st_size
        except FileNotFoundError:
            return "deleted while being checked"
        except (OSError, ValueError, EOFError) as exc:
            return f"not a .npy file: {exc}"
        expected_size = header_size + int(np.prod(shape)) * dtype.itemsize
        if size != expected_size:
            return f"{size} bytes where a {dtype} array of shape {shape} takes {expected_size}"
        return self._mismatch(shape, dtype)

    def _mismatch(self, shape: tuple[int, ...], dtype: np.dtype) -> str | None:
        if dtype != self.stored_dtype:
            return f"dtype {dtype}, not {self.stored_dtype}"
        if self.shape is not None and tuple(shape) != tuple(self.shape):
            return f"shape {tuple(shape)}, not {tuple(self.shape)}"
        return None

    def load(self, image_digest: str) -> Tensor:
        path = self.path(image_digest)
        array = np.load(path, allow_pickle=False)
        problem = self._mismatch(array.shape, array.dtype)
        if problem:
            raise ValueError(f"feature cache: {path} holds {problem}")
        return torch.from_numpy(array).view(self.dtype)

    def save(self, image_digest: str, features: Tensor) -> None:
        stored = features.detach().cpu().to(self.dtype).view(_STORED_AS[self.dtype]).numpy()
        write_atomically(self.path(image_digest), lambda handle: np.save(handle, stored, allow_pickle=False))


class FeatureCacheTooLarge(ValueError):
    """The missing features would not fit on the cache's disk (a stage exits with the message)."""


def check_room(store: FeatureStore, count: int) -> None:
    """Refuse, before computing anything, to fill the disk: `count` new entries must fit in its free space.

    At the study's settings one entry is ~400 KB (README, "Working with DVC at scale"), and a
    cache that fills its disk half-way through an epoch of hashing fails far from the cause.
    """
    if store.shape is None or count == 0:
        return
    entry_bytes = NPY_HEADER_BYTES + int(np.prod(store.shape)) * store.stored_dtype.itemsize
    needed = count * entry_bytes
    folder = store.folder
    while not folder.exists():  # the store's folder is made on the first save
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise FeatureCacheTooLarge(
            f"siamese: the feature cache needs {needed / 1e9:.1f} GB more ({count} images x {entry_bytes / 1e3:.0f} KB,"
            f" shape {tuple(store.shape)} {store.stored_dtype}) but {folder} has {free / 1e9:.1f} GB free: point"
            " siamese.feature_cache (or $ARTSIM_CACHE) at a larger disk, or make siamese.train_layers start lower"
            " (a smaller map is cached; `all` caches nothing)")


def cache_features(
    bottom: nn.Module,
    paths: Sequence[Path],
    store: FeatureStore,
    image_size: int,
    batch_size: int,
    device: torch.device,
    loader_workers: int = 0,
) -> tuple[list[str], dict[Path, str]]:
    """Make sure `store` holds `bottom`'s features of every decodable path.

    Returns each path's digest (in order) and the paths that failed to decode with the reason.
    Only images missing from the store are decoded and computed.
    """
    # Keyed by content, not by name: a renamed or re-ingested image is found again.
    rejected: dict[Path, str] = {}
    digests = [_content_digest(path, rejected) for path in tqdm(paths, desc="hash images", unit="img", disable=None)]
    first_path_of: dict[str, int] = {}
    for index, digest in enumerate(digests):
        if digest:
            first_path_of.setdefault(digest, index)
    # Damaged entries are deleted here (counted in store.healed) and computed again below.
    missing = [index for digest, index in first_path_of.items() if not store.usable(digest)]
    log.info("features: %d unique images, %d already cached", len(first_path_of), len(first_path_of) - len(missing))
    check_room(store, len(missing))
    # Chunks bound the memory: features go to disk as soon as a chunk is done.
    chunk_size = batch_size * 16
    for start in tqdm(range(0, len(missing), chunk_size), desc="cache features", unit="chunk", disable=None):
        chunk = missing[start:start + chunk_size]
        features, failed = embed_images(bottom, [paths[i] for i in chunk], image_size, batch_size, device,
                                        loader_workers, desc="bottom")
        for row, path_index in enumerate(chunk):
            if row in failed:
                rejected[paths[path_index]] = failed[row]
            else:
                store.save(digests[path_index], features[row])
    return digests, rejected


def _content_digest(path: ImageFile, rejected: dict[ImageFile, str]) -> str:
    """The image's sha256, or "" when it cannot be read (then recorded in `rejected` with the reason)."""
    try:
        return file_hash(path)
    except ImageRejected as exc:  # e.g. a shard shorter than its manifest says
        reason = exc.reason
    except OSError as exc:
        reason = "missing_file" if isinstance(exc, FileNotFoundError) else "unreadable"
    log.warning("skipping %s: %s", path, reason)
    rejected[path] = reason
    return ""
