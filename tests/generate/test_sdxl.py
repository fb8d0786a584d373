"""The real sdxl backend on a tiny SDXL-refiner-shaped pipeline built in code (no weights, no network)."""
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from artsim.generate.backends import check_params
from artsim.generate.backends.base import InputError
from artsim.generate.backends.sdxl import SdxlBackend, fit_size, plan_sdxl, resolve_device, resolve_dtype
from artsim.generate.run import generate, make_batches, run_batches
from artsim.generate.store import VariantStore
from artsim.params import GenerateParams, ParamsError
from tests.support.generate_fixtures import decodes, make_ingested, originals_of, tiny_refiner
from tests.support.tiny_sdxl import build_tiny_taesd

SIZES = [(120, 90), (90, 120), (120, 90), (64, 64)]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a path typo must fail, not reach for the hub


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # The tiny pipeline's tensors are too small to share between threads; on a busy 2-core
    # machine two spinning OpenMP threads make it several times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_refiner(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> tuple[pd.DataFrame, Path]:
    root = tmp_path_factory.mktemp("ingested")
    return make_ingested(root, count=4, sizes=SIZES), root


def sdxl_params(model: Path | str, store: Path, **values) -> GenerateParams:
    settings = dict(
        backend="sdxl",
        model=str(model),
        resolution=32,
        steps=4,
        strengths=[0.5],
        batch_size=2,
        device="cpu",
        store=store,
    )
    return GenerateParams(**{**settings, **values})


def test_generates_every_variant_at_its_size_byte_identically_and_resumes(model, ingested, tmp_path):
    manifest, root = ingested
    config = sdxl_params(model, tmp_path / "a")
    first = generate(manifest, root, config, seed=5)
    assert (first.computed, first.reused, first.failures) == (4, 0, [])
    store = VariantStore(tmp_path / "a")
    for variant in first.variants:
        width, height = manifest.set_index("id").loc[variant.original_id, ["width", "height"]]
        with Image.open(store.path(variant.key)) as image:
            assert image.size == fit_size(width, height, 32, 4) == variant.size
        assert variant.prompt.startswith("Painting ")
    assert generate(manifest, root, config, seed=5).computed == 0
    again = generate(manifest, root, sdxl_params(model, tmp_path / "b"), seed=5)
    assert [v.key for v in again.variants] == [v.key for v in first.variants]
    for variant in first.variants:
        assert store.path(variant.key).read_bytes() == VariantStore(tmp_path / "b").path(variant.key).read_bytes()
    widened = generate(manifest, root, sdxl_params(model, tmp_path / "a", strengths=[0.5, 0.75]), seed=5)
    assert (widened.computed, widened.reused) == (4, 4)


@pytest.fixture(scope="module")
def backend(model, ingested) -> SdxlBackend:
    return SdxlBackend(sdxl_params(model, Path("unused")), originals_of(ingested), "cpu")


def render_arrays(backend: SdxlBackend, variants) -> list[np.ndarray]:
    outputs = backend.render(variants, [backend.load(v) for v in variants])
    return [np.asarray(o, dtype=np.float64) for o in outputs]


def test_each_variant_has_its_own_noise_whatever_its_batch(backend, ingested):
    manifest, _ = ingested
    same_size = manifest[(manifest["width"] == 120) & (manifest["height"] == 90)]
    variants = plan_sdxl(same_size, backend.config, 5, backend)
    assert len(variants) == 2 and variants[0].seed != variants[1].seed
    together = render_arrays(backend, variants)
    alone = render_arrays(backend, variants[:1])
    # the same noise: equal up to float rounding of batched maths
    assert np.abs(together[0] - alone[0]).max() <= 2
    assert np.abs(together[0] - together[1]).mean() > 5


def test_a_nan_image_is_retried_alone_then_reported_and_the_batch_error_too(model, ingested, tmp_path):
    manifest, root = ingested
    broken = SdxlBackend(sdxl_params(model, tmp_path), originals_of(ingested), "cpu")
    with torch.no_grad():
        broken.pipe.vae.decoder.conv_out.bias.fill_(math.nan)  # what an fp16 VAE overflow looks like
    variants = plan_sdxl(manifest, broken.config, 5, broken)
    report = run_batches(make_batches(variants, broken, 2), broken, VariantStore(tmp_path), 95)
    assert report.computed == 0
    assert {f.reason for f in report.failures} == {"nan_image"} and len(report.failures) == 4
    assert not list(tmp_path.rglob("*.jpg"))


def test_a_failing_batch_is_retried_one_image_at_a_time(model, ingested, tmp_path):
    manifest, root = ingested
    backend = SdxlBackend(sdxl_params(model, tmp_path), originals_of(ingested), "cpu")
    pipeline = backend.pipe
    sizes: list[int] = []

    def out_of_memory_on_batches(**kwargs):
        sizes.append(len(kwargs["image"]))
        if len(kwargs["image"]) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return pipeline(**kwargs)

    backend.pipe = out_of_memory_on_batches
    variants = plan_sdxl(manifest, backend.config, 5, backend)
    report = run_batches(make_batches(variants, backend, 2), backend, VariantStore(tmp_path), 95)
    assert report.computed == 4 and not report.failures
    assert 2 in sizes and sizes.count(1) >= 2


def test_a_fast_vae_replaces_the_pipelines_own(model, ingested, tmp_path):
    manifest, root = ingested
    taesd = build_tiny_taesd(tmp_path / "taesd")
    config = sdxl_params(model, tmp_path / "store", vae=str(taesd))
    backend = SdxlBackend(config, originals_of(ingested), "cpu")
    assert type(backend.pipe.vae).__name__ == "AutoencoderTiny"
    variants = plan_sdxl(manifest, config, 5, backend)
    outputs = backend.render(variants[:1], [backend.load(variants[0])])
    assert isinstance(outputs[0], Image.Image) and outputs[0].size == variants[0].size
    plain = SdxlBackend(sdxl_params(model, tmp_path / "store"), originals_of(ingested), "cpu")
    assert backend.recipe["vae"] != plain.recipe["vae"]  # a VAE is part of every key


def test_device_and_dtype_are_resolved_or_refused_before_any_work():
    assert resolve_device("auto") == ("cuda:0" if torch.cuda.is_available() else "cpu")
    assert resolve_dtype("auto", "cpu") == "fp32" and resolve_dtype("auto", "cuda:0") == "fp16"
    with pytest.raises(InputError, match="generate.dtype"):
        resolve_dtype("bf16", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="generate.device"):
            resolve_device("cuda:1")


def test_all_written_variants_decode(model, ingested, tmp_path):
    manifest, root = ingested
    result = generate(manifest, root, sdxl_params(model, tmp_path, batch_size=4), seed=1)
    assert result.computed == 4
    assert all(decodes(path) for path in tmp_path.rglob("*.jpg"))


def test_a_hub_model_loads_at_its_revision_which_keys_its_variants(model, ingested, monkeypatch):
    import diffusers

    real = diffusers.StableDiffusionXLImg2ImgPipeline
    asked: list[tuple[str, str | None]] = []

    class Hub(real):  # the hub, offline: records what is asked for and serves the tiny folder
        @classmethod
        def from_pretrained(cls, name, **kwargs):
            asked.append((str(name), kwargs.pop("revision", None)))
            return real.from_pretrained(model, **kwargs)

    monkeypatch.setattr(diffusers, "StableDiffusionXLImg2ImgPipeline", Hub)
    manifest, root = ingested
    hub_id = "someone/refiner"
    pinned = SdxlBackend(sdxl_params(hub_id, Path("unused"), revision="abc123"), originals_of(ingested), "cpu")
    moved = SdxlBackend(sdxl_params(hub_id, Path("unused"), revision="def456"), originals_of(ingested), "cpu")
    SdxlBackend(sdxl_params(model, Path("unused")), originals_of(ingested), "cpu")  # a local folder
    assert asked == [(hub_id, "abc123"), (hub_id, "def456"), (str(model), None)]  # a folder has no revision
    keys = [{v.key for v in plan_sdxl(manifest, b.config, 5, b)} for b in (pinned, moved)]
    assert keys[0].isdisjoint(keys[1])


def test_another_hub_model_needs_its_own_revision(model, tmp_path):
    with pytest.raises(ParamsError, match="generate.revision"):
        check_params(sdxl_params("someone/refiner", tmp_path))  # the default pins SDXL Refiner 1.0
    check_params(sdxl_params("someone/refiner", tmp_path, revision="main"))
    check_params(sdxl_params(model, tmp_path))  # a folder ignores the revision
