"""Generation without diffusers: keys, prompts, params, the store, the run loop, style_transfer."""
import errno
import os
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from artsim.core.distributed import Ranks, processes_wanted, ranks_from_env, torchrun_command
from artsim.generate.assemble import failures_table
from artsim.generate.backends import check_params
from artsim.generate.backends.base import InputError, ItemFailure
from artsim.generate.backends.importer import plan_import
from artsim.generate.backends.sdxl import fit_size, plan_sdxl
from artsim.generate.backends.style_transfer import StyleTransferBackend, choose_style_sources, plan_style_transfer
from artsim.generate.prompts import check_template, import_pattern, render_prompt
from artsim.generate.run import check_inputs, generate, make_batches, plan, run_batches
from artsim.generate.store import TEMP_PREFIX, VariantStore
from artsim.generate.variants import Variant, variant_key, variant_seed, weights_identity
from artsim.params import GenerateParams, ParamsError, parse_params
from tests.support.generate_fixtures import decodes, make_ingested, originals_of
from tests.support.helpers import REPO_ROOT


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> tuple[pd.DataFrame, Path]:
    root = tmp_path_factory.mktemp("ingested")
    return make_ingested(root, count=4), root


def params(**values) -> GenerateParams:
    return GenerateParams(**values)


# --- keys and plans --------------------------------------------------------------------------

def test_style_source_is_another_painting_and_does_not_depend_on_order():
    split_of = {f"{i:016x}": "train" for i in range(1, 50)}
    chosen = choose_style_sources(split_of, seed=7)
    assert all(chosen[i] != i and chosen[i] in split_of for i in split_of)
    assert chosen == choose_style_sources(dict(reversed(split_of.items())), seed=7)
    assert chosen != choose_style_sources(split_of, seed=8)
    # every painting is not the style of one painting only
    assert len(set(chosen.values())) > len(split_of) / 3


def test_adding_paintings_changes_few_style_sources():
    split_of = {f"p{i}": "train" for i in range(200)}
    before = choose_style_sources(split_of, seed=3)
    after = choose_style_sources({**split_of, **{f"new{i}": "train" for i in range(4)}}, seed=3)
    changed = [i for i in split_of if after[i] != before[i]]
    # consistent hashing: about one choice in 200 per new painting, where position-based choices change nearly all
    assert len(changed) <= 20


def split_manifest(splits: dict[str, int]) -> pd.DataFrame:
    """What planning reads of an ingested manifest, for `splits[name]` paintings per split."""
    rows = [(f"{name}{i:03d}", name) for name, count in splits.items() for i in range(count)]
    return pd.DataFrame({
        "id": [i for i, _ in rows], "hash": [f"hash-{i}" for i, _ in rows],
        "path": [f"images/{i}.jpg" for i, _ in rows], "split": [s for _, s in rows],
    })


def test_no_variant_is_styled_after_a_painting_of_another_split():
    manifest = split_manifest({"train": 20, "val": 5, "test": 7})
    split_of = dict(zip(manifest["id"], manifest["split"]))
    for seed in range(3):
        variants = plan(params(strengths=[0.25, 0.5]), manifest, seed, None).variants
        assert len(variants) == 2 * len(manifest)
        assert all(
            split_of[v.style_source_id] == split_of[v.original_id] and v.style_source_id != v.original_id
            for v in variants
        )


def test_a_painting_alone_in_its_split_is_reported_and_empty_splits_are_fine():
    manifest = split_manifest({"train": 3, "val": 1, "test": 0})
    variants, left_out = plan_style_transfer(manifest, params(strengths=[0.5]), seed=1)
    assert {v.original_id for v in variants} == {"train000", "train001", "train002"}
    assert {i: f.reason for i, f in left_out.items()} == {"val000": "no_style_source"}
    no_split = manifest.assign(split=["train", "train", None, "val"])
    assert plan_style_transfer(no_split, params(strengths=[0.5]), seed=1)[1]["train002"].reason == "no_split"


def test_style_transfer_keys_change_with_what_determines_a_variant_and_only_that(ingested):
    manifest, _ = ingested
    base = {v.key for v in plan_style_transfer(manifest, params(strengths=[0.5]), seed=1)[0]}
    assert len(base) == len(manifest)
    for config, seed in (
        (params(strengths=[0.6]), 1),
        (params(strengths=[0.5]), 2),
        (params(strengths=[0.5], max_side=128), 1),
        (params(strengths=[0.5], jpeg_quality=90), 1),
    ):
        assert base.isdisjoint(v.key for v in plan_style_transfer(manifest, config, seed)[0])
    # how the run is executed is not part of a variant
    for config in (
        params(strengths=[0.5], batch_size=9),
        params(strengths=[0.5], store=Path("elsewhere")),
        params(strengths=[0.5], processes=3),
    ):
        assert base == {v.key for v in plan_style_transfer(manifest, config, 1)[0]}


class FakeSdxl:
    """What plan_sdxl needs from a loaded pipeline."""

    multiple = 8

    def __init__(self, **recipe):
        self.recipe = {
            "backend": "sdxl",
            "model": "m",
            "steps": 25,
            "guidance_scale": 7.5,
            "resolution": 64,
            "dtype": "fp32",
            **recipe,
        }


def test_sdxl_keys_cover_prompt_strength_seed_model_and_settings(ingested):
    manifest, _ = ingested
    config = params(backend="sdxl", strengths=[0.4], resolution=64)
    base = plan_sdxl(manifest, config, 1, FakeSdxl())
    keys = {v.key for v in base}
    assert len(keys) == len(manifest)
    first = next(v for v in base if v.original_id == manifest["id"].iloc[0])
    assert first.prompt == "Painting 0, landscape by Artist 0, Impressionism, 1800"
    assert first.seed == variant_seed(first.key) and first.size == (64, 48)
    changed = [
        plan_sdxl(manifest, params(backend="sdxl", strengths=[0.4], prompt="{title}"), 1, FakeSdxl()),
        plan_sdxl(manifest, params(backend="sdxl", strengths=[0.4], negative_prompt="blurry"), 1, FakeSdxl()),
        plan_sdxl(manifest, params(backend="sdxl", strengths=[0.3]), 1, FakeSdxl()),
        plan_sdxl(manifest, config, 2, FakeSdxl()),
        plan_sdxl(manifest, config, 1, FakeSdxl(steps=30)),
        plan_sdxl(manifest, config, 1, FakeSdxl(vae="taesdxl")),
        plan_sdxl(manifest, config, 1, FakeSdxl(dtype="fp16")),
    ]
    for variants in changed:
        assert keys.isdisjoint(v.key for v in variants)
    # widening the sweep keeps every existing key
    wider = plan_sdxl(manifest, params(backend="sdxl", strengths=[0.4, 0.6]), 1, FakeSdxl())
    assert keys < {v.key for v in wider} and len(wider) == 2 * len(manifest)


def test_variant_seed_depends_on_the_key_only():
    assert variant_seed("abc") == variant_seed("abc") != variant_seed("abd")
    assert 0 <= variant_seed("abc") < 2**60
    assert variant_key({"a": 1, "b": 0.5}) == variant_key({"b": 0.5, "a": 1}) != variant_key({"a": 1, "b": 0.25})


def test_fit_size_keeps_aspect_and_rounds_to_the_model_multiple():
    assert fit_size(1200, 900, 1024, 64) == (1024, 768)
    assert fit_size(300, 1000, 1024, 64) == (320, 1024)
    assert fit_size(120, 90, 32, 4) == (32, 24)
    assert fit_size(4000, 10, 1024, 64) == (1024, 64)  # never below one multiple


def test_local_model_fingerprint_follows_content_not_path(tmp_path):
    folder = tmp_path / "model"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    (folder / "unet" / "weights.safetensors").write_bytes(bytes(range(256)) * 8192)
    first = weights_identity(str(folder))
    assert first.startswith("folder:")
    moved = tmp_path / "moved"
    folder.rename(moved)
    assert weights_identity(str(moved)) == first
    data = bytearray((moved / "unet" / "weights.safetensors").read_bytes())
    data[::4096] = bytes(b ^ 0xFF for b in data[::4096])  # retrained: weights change all over the file
    (moved / "unet" / "weights.safetensors").write_bytes(bytes(data))
    assert weights_identity(str(moved)) != first
    assert (
        weights_identity("stabilityai/stable-diffusion-xl-refiner-1.0") == "stabilityai/stable-diffusion-xl-refiner-1.0"
    )


# --- prompts and params ----------------------------------------------------------------------

def test_prompts_read_like_text_and_leave_no_dangling_separator():
    row = {
        "title": "Lion",
        "artist": "Albrecht Durer",
        "style": "Northern_Renaissance",
        "genre": "animal_painting",
        "year": "",
    }
    assert (
        render_prompt("{title}, {genre} by {artist}, {style}, {year}", row)
        == "Lion, animal painting by Albrecht Durer, Northern Renaissance"
    )
    assert render_prompt("{caption}", {"caption": float("nan")}) == ""
    assert render_prompt("", row) == ""


def test_templates_name_their_unknown_field():
    assert check_template("{title} {year:>4}", {"title", "year"}) == {"title", "year"}
    with pytest.raises(ValueError, match=r"unknown field \{titel\}"):
        check_template("{titel}", {"title"})
    with pytest.raises(ValueError, match="not a valid template"):
        check_template("{title", {"title"})


def test_import_pattern_escapes_metadata_but_keeps_template_wildcards():
    row = {"style": "Ukiyo_e", "source_path": "Ukiyo_e/hokusai_wave [1].jpg", "title": "Wave"}
    assert (
        import_pattern("{style}/{stem}_resize768_generated*.jpg", row, 0.4)
        == "Ukiyo_e/hokusai_wave [[]1]_resize768_generated*.jpg"
    )
    assert import_pattern("{strength:.2f}/{stem}.png", row, 0.4) == "0.40/hokusai_wave [[]1].png"


@pytest.mark.parametrize(
    ("values", "key", "says"),
    [
        ({"backend": "sdxl", "prompt": "{title} by {painter}"}, "generate.prompt", "unknown field {painter}"),
        ({"backend": "sdxl", "negative_prompt": "{blur}"}, "generate.negative_prompt", "unknown field {blur}"),
        ({"backend": "sdxl", "device": "cpu", "dtype": "fp16"}, "generate.dtype", "needs a GPU"),
        ({"backend": "sdxl", "device": "cpu", "cpu_offload": True}, "generate.cpu_offload", "needs device"),
        ({"backend": "sdxl", "device": "gpu"}, "generate.device", "should match pattern"),
        ({"backend": "sdxl", "strengths": [0.01], "steps": 25}, "generate.steps", "no denoising step"),
        ({"backend": "sdxl", "model": "magenta-arbitrary"}, "generate.model", "needs a diffusers model"),
        ({"backend": "style_transfer", "model": "some/model"}, "generate.model", "one model"),
        ({"backend": "import"}, "generate.import_dir", "existing folder"),
        ({"processes": 0}, "generate.processes", "at least 1"),
        ({"backend": "dall-e"}, "generate.backend", "'style_transfer', 'sdxl' or 'import'"),
    ],
)
def test_bad_generate_params_fail_with_their_key(values, key, says):
    raw = {"ingest": {"source": "data/sample"}, "generate": values}
    with pytest.raises(ParamsError) as error:
        check_params(parse_params(raw).generate)  # what the generate stage does before any work
    assert key in str(error.value) and says in str(error.value)


def test_model_defaults_to_the_backends_own():
    assert params().model == "magenta-arbitrary"
    assert params(backend="sdxl").model == "stabilityai/stable-diffusion-xl-refiner-1.0"
    assert params(backend="sdxl", model="./tiny").model == "./tiny"


def test_import_with_several_strengths_needs_strength_in_the_template(tmp_path):
    with pytest.raises(ParamsError, match="generate.import_template"):
        check_params(
            parse_params(
                {
                    "ingest": {"source": "x"},
                    "generate": {"backend": "import", "import_dir": str(tmp_path), "strengths": [0.2, 0.4]},
                }
            ).generate
        )
    check_params(
        parse_params(
            {
                "ingest": {"source": "x"},
                "generate": {
                    "backend": "import",
                    "import_dir": str(tmp_path),
                    "strengths": [0.2, 0.4],
                    "import_template": "{strength}/{stem}.jpg",
                },
            }
        ).generate
    )


def test_a_prompt_field_the_data_lacks_fails_before_any_work(ingested):
    manifest, _ = ingested
    with pytest.raises(InputError, match="generate.prompt.*caption"):
        check_inputs(params(backend="sdxl", prompt="{caption}"), manifest)
    check_inputs(params(backend="sdxl", prompt="{caption}"), manifest.assign(caption="a lion"))


# --- store -------------------------------------------------------------------------------------

def test_store_writes_atomically(tmp_path):
    store = VariantStore(tmp_path / "store")
    image = Image.new("RGB", (16, 8), (200, 10, 10))
    store.put_image("ab12cd", image, 95)
    assert store.has("ab12cd") and decodes(store.path("ab12cd"))
    assert not list(store.root.rglob(f"{TEMP_PREFIX}*"))


def test_a_failed_write_leaves_no_visible_variant_and_stale_debris_is_removed(tmp_path, monkeypatch):
    store = VariantStore(tmp_path / "store")

    def disk_gone(_):
        raise OSError(errno.EIO, "disk went away")

    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", disk_gone)
        with pytest.raises(OSError):
            store.put_bytes("1234", b"\xff\xd8\xffdata")
    assert not store.has("1234") and not list(store.root.rglob("*.jpg"))
    debris = store.root / "12" / f"{TEMP_PREFIX}host-1-x.jpg"
    debris.write_bytes(b"half")
    time.sleep(1.0)
    fresh = store.root / "12" / f"{TEMP_PREFIX}host-2-y.jpg"
    fresh.write_bytes(b"half")
    assert store.remove_stale_temporaries(older_than_s=0.5) == 1
    assert not debris.exists() and fresh.exists()  # a young one may be another rank's write in progress


def test_an_adoption_in_progress_is_not_taken_for_debris_by_another_run(tmp_path):
    """A temporary hard link to an imported file carries that file's mtime (here a month old)."""
    published = tmp_path / "published.jpg"
    published.write_bytes(b"\xff\xd8\xffdata")
    month_ago = time.time() - 30 * 86400
    os.utime(published, (month_ago, month_ago))
    store = VariantStore(tmp_path / "store")
    (store.root / "ab").mkdir(parents=True)
    os.link(published, store.root / "ab" / f"{TEMP_PREFIX}host-1-ab12.jpg")
    assert store.remove_stale_temporaries() == 0


# --- the run loop --------------------------------------------------------------------------------

class FlakyBackend:
    """Paints a flat colour per variant; fails whole batches containing `oom_key`, returns
    NaN for `nan_keys` (once, or always), and cannot load `broken_keys`."""

    def __init__(self, oom_key="", nan_once=(), nan_always=(), broken=()):
        self.oom_key, self.nan_once, self.nan_always, self.broken = oom_key, set(nan_once), set(nan_always), set(broken)
        self.calls: list[list[str]] = []

    def load(self, variant):
        if variant.key in self.broken:
            from artsim.core.images import ImageRejected

            raise ImageRejected("corrupt_image", "test")
        return variant.key

    def batch_group(self, variant):
        return variant.strength

    def render(self, variants, inputs):
        keys = [v.key for v in variants]
        self.calls.append(keys)
        if self.oom_key in keys and len(keys) > 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        outputs = []
        for key in keys:
            if key in self.nan_always or key in self.nan_once:
                self.nan_once.discard(key)
                outputs.append(ItemFailure("nan_image", "non-finite pixels"))
            else:
                outputs.append(Image.new("RGB", (8, 8), tuple(bytes.fromhex(key[:6]))))
        return outputs

    def recover(self):
        pass


def variants_for(count: int, strengths=(0.5,)) -> list[Variant]:
    return [
        Variant(
            key=variant_key({"i": i, "s": s}), original_id=f"{i:04x}", strength=s, backend="fake", model="m", seed=0
        )
        for i in range(count)
        for s in strengths
    ]


def test_a_failing_batch_and_nan_images_are_retried_alone_then_reported_per_key(tmp_path):
    variants = variants_for(8)
    batches = make_batches(variants, FlakyBackend(), batch_size=4)
    assert [len(b) for b in batches] == [4, 4]
    oom, nan_once, nan_always, broken = batches[0][1].key, batches[1][0].key, batches[1][2].key, batches[0][3].key
    backend = FlakyBackend(oom_key=oom, nan_once=[nan_once], nan_always=[nan_always], broken=[broken])
    report = run_batches(batches, backend, VariantStore(tmp_path), 95)
    failed = {f.key: f.reason for f in report.failures}
    assert failed == {nan_always: "nan_image", broken: "corrupt_image"}
    assert report.computed == 6
    assert [oom] in backend.calls  # the failed batch was retried one variant at a time
    assert backend.calls.count([nan_always]) == 1  # NaN retried once alone, then reported
    assert all(len(call) <= 4 for call in backend.calls)


def test_an_error_that_persists_alone_is_reported_as_out_of_memory(tmp_path):
    variants = variants_for(2)

    class AlwaysOom(FlakyBackend):
        def render(self, variants, inputs):
            raise RuntimeError("CUDA out of memory")

    report = run_batches(make_batches(variants, AlwaysOom(), 2), AlwaysOom(), VariantStore(tmp_path), 95)
    assert report.computed == 0 and {f.reason for f in report.failures} == {"out_of_memory"}


def test_batches_hold_one_group_each_and_do_not_depend_on_input_order():
    variants = variants_for(5, strengths=(0.3, 0.6))
    batches = make_batches(variants, FlakyBackend(), batch_size=2)
    assert all(len({v.strength for v in batch}) == 1 for batch in batches)
    assert [[v.key for v in b] for b in batches] == [
        [v.key for v in b] for b in make_batches(variants[::-1], FlakyBackend(), 2)
    ]


# --- style_transfer end to end through the store ------------------------------------------------

@pytest.fixture(scope="module")
def style_backend(ingested) -> StyleTransferBackend:
    return StyleTransferBackend(originals_of(ingested), max_side=64)


def test_strength_moves_the_style_transfer_variant_away_from_the_original(ingested, style_backend):
    manifest, root = ingested
    original = Image.open(root / manifest["path"].iloc[0]).convert("RGB")
    style = Image.open(root / manifest["path"].iloc[1]).convert("RGB")

    def distance(variant: Image.Image) -> float:
        reference = np.asarray(original.resize(variant.size, Image.Resampling.BICUBIC), dtype=np.float64)
        return float(np.abs(reference - np.asarray(variant, dtype=np.float64)).mean())

    distances = [distance(style_backend.stylize(original, style, s)) for s in (0.1, 0.4, 0.7, 1.0)]
    assert distances == sorted(distances) and distances[-1] > distances[0] + 5


def test_resume_and_a_widened_sweep_compute_only_what_is_missing(ingested, tmp_path, monkeypatch):
    manifest, root = ingested
    config = params(strengths=[0.3], max_side=64, store=tmp_path / "store")
    first = generate(manifest, root, config, seed=3)
    assert (first.computed, first.reused, first.failures) == (4, 0, [])
    again = generate(manifest, root, config, seed=3)
    assert (again.computed, again.reused) == (0, 4)
    wider = generate(manifest, root, params(strengths=[0.3, 0.8], max_side=64, store=tmp_path / "store"), seed=3)
    assert (wider.computed, wider.reused) == (4, 4)
    # byte-identical on a second, fresh store
    fresh = generate(manifest, root, params(strengths=[0.3], max_side=64, store=tmp_path / "fresh"), seed=3)
    for variant in fresh.variants:
        assert (tmp_path / "fresh" / variant.key[:2] / f"{variant.key}.jpg").read_bytes() == VariantStore(
            tmp_path / "store"
        ).path(variant.key).read_bytes()


def test_a_broken_original_is_reported_and_the_rest_finishes(ingested, tmp_path):
    manifest, root = ingested
    broken = tmp_path / "ingested"
    broken.mkdir()
    for path in manifest["path"]:
        (broken / path).parent.mkdir(parents=True, exist_ok=True)
        (broken / path).write_bytes((root / path).read_bytes())
    (broken / manifest["path"].iloc[0]).write_bytes(b"\xff\xd8 not really a jpeg")
    result = generate(manifest, broken, params(strengths=[0.5], max_side=64, store=tmp_path / "store"), seed=3)
    # the broken painting fails as an original, and as the style source of another
    assert {f.reason for f in result.failures} <= {"corrupt_image", "not_an_image"}
    assert manifest["id"].iloc[0] in {f.original_id for f in result.failures}
    assert result.computed == 4 - len(result.failures) > 0


def test_a_painting_alone_in_its_split_is_reported_per_strength_and_the_rest_is_made(ingested, tmp_path):
    manifest, root = ingested
    lonely = manifest.assign(split=["train", "train", "train", "test"])
    result = generate(lonely, root, params(strengths=[0.5, 0.75], max_side=64, store=tmp_path / "store"), seed=3)
    assert result.computed == len(result.variants) == 6
    assert {v.style_source_id for v in result.variants} <= set(manifest["id"].iloc[:3])
    table = failures_table(result)
    assert table[["original_id", "strength", "reason"]].values.tolist() == [
        [manifest["id"].iloc[3], s, "no_style_source"] for s in (0.5, 0.75)
    ]
    assert "'test'" in table["detail"].iloc[0]


@pytest.mark.parametrize(
    "generate_params, says",
    [
        # one painting per split: style_transfer has no style source anywhere
        (
            {},
            r"^generate: style_transfer restyles each painting after another painting of its own split, "
            r"and no split holds two paintings \(no_style_source: 3\); .*ingest\.source",
        ),
        (
            {"backend": "import", "import_dir": "published"},
            r"^generate: generate\.import_template '\{style\}/\{stem\}_resize768_generated\.jpg' "
            r"matched no file under generate\.import_dir \(published\) for any of the 3 ingested paintings",
        ),
    ],
)
def test_generate_stage_that_makes_no_variant_fails_with_one_line_naming_the_param(
    tmp_path, monkeypatch, generate_params, says
):
    from stages import generate as generate_stage

    manifest = make_ingested(tmp_path / "data/ingested", count=3)
    manifest.assign(split=["train", "val", "test"]).to_parquet(tmp_path / "data/ingested/manifest.parquet", index=False)
    (tmp_path / "published").mkdir()
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    raw["generate"].update(strengths=[0.5], max_side=64, store=str(tmp_path / "store"), **generate_params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        generate_stage.main()
    assert re.match(says, str(exited.value.code)) and "\n" not in str(exited.value.code)
    assert len(pd.read_csv(tmp_path / "data/generated/failures.csv")) == 3  # what each painting lacks, for the user


# --- import -------------------------------------------------------------------------------------

def test_import_adopts_matching_files_and_reports_originals_without_one(ingested, tmp_path):
    manifest, _ = ingested
    folder = tmp_path / "published"
    for row in manifest.iloc[:3].itertuples():
        target = folder / row.style / f"{Path(row.source_path).stem}_resize768_generated.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (24, 16), (10, 20, 30)).save(target, quality=90)
    png = folder / manifest["style"].iloc[2] / f"{Path(manifest['source_path'].iloc[2]).stem}_resize768_generated.jpg"
    Image.new("RGB", (24, 16), (10, 20, 30)).save(png, format="PNG")  # not really a JPEG: re-encoded
    config = params(backend="import", import_dir=folder, strengths=[0.4], store=tmp_path / "store")
    variants, unmatched, refused = plan_import(manifest, config, 1)
    assert unmatched == [manifest["id"].iloc[3]] and len(variants) == 3 and not refused
    result = generate(manifest, Path("."), config, seed=1)
    assert result.computed == 3 and result.unmatched == unmatched
    store = VariantStore(tmp_path / "store")
    first = next(v for v in variants if v.original_id == manifest["id"].iloc[0])
    assert store.path(first.key).read_bytes() == (folder / first.source).read_bytes()  # JPEG kept byte for byte
    assert all(decodes(store.path(v.key)) for v in variants)


# --- ranks ----------------------------------------------------------------------------------------

def test_ranks_come_from_torchrun_environment():
    assert ranks_from_env({}) == Ranks(0, 1, 0) and not Ranks().launched
    ranks = ranks_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (ranks.rank, ranks.world_size, ranks.local_rank, ranks.is_main) == (3, 4, 1, False)
    assert torchrun_command(2, "stages.generate")[-4:] == [
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "stages.generate",
    ]
    assert processes_wanted(3, "auto") == 3 and processes_wanted("auto", "cpu") == 1
