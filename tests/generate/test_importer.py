"""Backend `import` on untrusted metadata and folders: every adopted file stays inside
`generate.import_dir`, and templates never let a metadata value be interpreted."""
import errno
import os
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from artsim.core.images import ImageRejected, content_hash
from artsim.core.paths import resolve_inside
from artsim.generate.assemble import assemble, failed_by_reason_table, failures_table, generate_metrics
from artsim.generate.backends import check_params
from artsim.generate.backends.importer import ImportBackend
from artsim.generate.prompts import import_pattern, render_prompt
from artsim.generate.run import generate
from artsim.generate.store import VariantStore
from artsim.generate.variants import Variant
from artsim.params import GenerateParams, ParamsError, parse_params
from tests.support.generate_fixtures import make_ingested

TEMPLATE = "{style}/{stem}_resize768_generated.jpg"


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> pd.DataFrame:
    return make_ingested(tmp_path_factory.mktemp("ingested"), count=2)


def stem(row: pd.Series) -> str:
    return Path(row["source_path"]).stem


def plant(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (24, 16), (200, 10, 10)).save(path, quality=90)
    return path


def run_import(originals: pd.DataFrame, folder: Path, tmp_path: Path, template: str = TEMPLATE):
    config = GenerateParams(
        backend="import", import_dir=folder, import_template=template, strengths=[0.4], store=tmp_path / "store"
    )
    result = generate(originals, Path("."), config, seed=1)
    reported = failures_table(result)
    return result, dict(zip(reported["original_id"], reported["reason"]))


def adopted_sources(result) -> set[str]:
    return {v.source for v in result.variants}


# --- what a metadata value can reach -----------------------------------------------------------

def test_a_style_with_dot_dot_does_not_adopt_a_file_outside_the_folder(manifest, tmp_path):
    originals = manifest.copy()
    originals.loc[0, "style"] = "../outside"
    folder = tmp_path / "published"
    plant(folder / originals.loc[1, "style"] / f"{stem(originals.loc[1])}_resize768_generated.jpg")
    secret = plant(tmp_path / "outside" / f"{stem(originals.loc[0])}_resize768_generated.jpg")
    result, reported = run_import(originals, folder, tmp_path)
    assert len(result.variants) == 1 and all(not s.startswith("..") for s in adopted_sources(result))
    assert secret.is_file() and originals.loc[0, "id"] in reported  # reported, not adopted


def test_an_absolute_style_is_reported_not_a_crash(manifest, tmp_path):
    originals = manifest.copy()
    originals.loc[0, "style"] = "/etc"
    folder = tmp_path / "published"
    plant(folder / originals.loc[1, "style"] / f"{stem(originals.loc[1])}_resize768_generated.jpg")
    result, reported = run_import(originals, folder, tmp_path)
    assert len(result.variants) == 1 and originals.loc[0, "id"] in reported


def test_an_empty_field_never_makes_an_absolute_pattern(manifest, tmp_path):
    originals = manifest.copy()
    originals.loc[0, "year"] = ""
    folder = tmp_path / "published"
    plant(folder / originals.loc[1, "year"] / f"{stem(originals.loc[1])}.jpg")
    plant(folder / f"{stem(originals.loc[0])}.jpg")  # at the root: the empty year must not land here by accident
    result, reported = run_import(originals, folder, tmp_path, "{year}/{stem}.jpg")
    assert adopted_sources(result) == {f"{originals.loc[1, 'year']}/{stem(originals.loc[1])}.jpg"}
    assert reported[originals.loc[0, "id"]] == "empty_path_component"
    assert result.failed_by_reason == {"empty_path_component": 1}


def test_a_dot_or_dot_dot_value_cannot_be_a_path_component():
    for value in (".", ".."):
        with pytest.raises(ValueError, match="path component"):
            import_pattern(TEMPLATE, {"style": value, "source_path": "x/a.jpg"}, 0.4)
    # Inside a larger name a dot is just a dot; separators and NUL in a value are neutralised.
    assert (
        import_pattern(TEMPLATE, {"style": "..a/b\\c\0d", "source_path": "x/a.jpg"}, 0.4)
        == "..a_b_c_d/a_resize768_generated.jpg"
    )


def test_a_name_too_long_for_the_filesystem_is_reported_not_a_crash(manifest, tmp_path):
    originals = manifest.copy()
    originals.loc[0, "title"] = "Long " * 100
    folder = tmp_path / "published"
    plant(folder / f"{originals.loc[1, 'title']}.jpg")
    result, reported = run_import(originals, folder, tmp_path, "{title}.jpg")
    assert len(result.variants) == 1 and reported[originals.loc[0, "id"]] == "unreadable_path"


def test_a_source_dir_that_climbs_out_is_refused(manifest, tmp_path):
    originals = manifest.copy()
    originals.loc[0, "source_path"] = "../outside/evil.jpg"  # e.g. a manifest written by another tool
    folder = tmp_path / "published"
    plant(tmp_path / "outside" / "evil.jpg")
    plant(folder / "x.jpg")
    result, reported = run_import(originals, folder, tmp_path, "{source_dir}/{stem}.jpg")
    assert not result.variants and reported[originals.loc[0, "id"]] == "path_escapes_root"


# --- links -------------------------------------------------------------------------------------

def test_a_link_out_of_the_import_folder_is_refused_and_one_inside_is_adopted(manifest, tmp_path):
    folder = tmp_path / "published"
    secret = plant(tmp_path / "outside" / "secret.jpg")
    first, second = manifest.loc[0], manifest.loc[1]
    link_out = folder / first["style"] / f"{stem(first)}_resize768_generated.jpg"
    link_out.parent.mkdir(parents=True)
    os.symlink(secret, link_out)
    real = plant(folder / "real" / "inside.jpg")
    link_in = folder / second["style"] / f"{stem(second)}_resize768_generated.jpg"
    link_in.parent.mkdir(parents=True)
    os.symlink(real, link_in)
    result, reported = run_import(manifest, folder, tmp_path)
    assert adopted_sources(result) == {link_in.relative_to(folder).as_posix()}
    assert reported == {first["id"]: "link_outside_source"}
    assert generate_metrics(result, 1)["failed"] == 1
    assert failed_by_reason_table(result).to_dict("records") == [{"reason": "link_outside_source", "count": 1}]
    assert failures_table(result).set_index("original_id")["reason"].to_dict() == {first["id"]: "link_outside_source"}


def test_a_linked_folder_pointing_out_is_refused(manifest, tmp_path):
    folder = tmp_path / "published"
    first = manifest.loc[0]
    plant(tmp_path / "elsewhere" / f"{stem(first)}_resize768_generated.jpg")
    folder.mkdir()
    os.symlink(tmp_path / "elsewhere", folder / first["style"])
    result, reported = run_import(manifest.iloc[:1], folder, tmp_path)
    assert not result.variants and reported == {first["id"]: "link_outside_source"}


def test_a_file_swapped_for_an_outside_link_after_planning_is_not_read(tmp_path):
    folder = tmp_path / "published"
    folder.mkdir()
    os.symlink(plant(tmp_path / "secret.jpg"), folder / "a.jpg")
    variant = Variant(key="k", original_id="o", strength=0.4, backend="import", model="m", seed=1, source="a.jpg")
    with pytest.raises(ImageRejected) as rejected:
        ImportBackend(folder).load(variant)
    assert rejected.value.reason == "link_outside_source"


def test_a_file_changed_since_planning_is_refused_not_stored_under_the_old_key(tmp_path):
    folder = tmp_path / "published"
    plant(folder / "a.jpg")
    planned = Variant(key="k", original_id="o", strength=0.4, backend="import", model="m", seed=1,
                      source="a.jpg", source_hash=content_hash((folder / "a.jpg").read_bytes()))
    _, data, _ = ImportBackend(folder).load(planned)
    assert data == (folder / "a.jpg").read_bytes()
    Image.new("RGB", (24, 16), (10, 200, 10)).save(folder / "a.jpg")  # replaced after planning
    with pytest.raises(ImageRejected) as rejected:
        ImportBackend(folder).load(planned)
    assert rejected.value.reason == "changed_since_planning"


# --- stored once: an adopted file is linked into the store, not copied -------------------------

def test_an_imported_jpeg_is_linked_into_the_store_not_copied(manifest, tmp_path):
    folder = tmp_path / "published"
    first = manifest.iloc[0]
    published = plant(folder / first["style"] / f"{stem(first)}_resize768_generated.jpg")
    result, _ = run_import(manifest.iloc[:1], folder, tmp_path)
    stored = VariantStore(tmp_path / "store").path(result.variants[0].key)
    assert os.stat(stored).st_ino == os.stat(published).st_ino and result.computed == 1


def test_an_imported_file_edited_in_place_after_its_import_is_not_packed(manifest, tmp_path):
    folder = tmp_path / "published"
    first = manifest.iloc[0]
    published = plant(folder / first["style"] / f"{stem(first)}_resize768_generated.jpg")
    result, _ = run_import(manifest.iloc[:1], folder, tmp_path)
    with open(published, "r+b") as handle:  # `cp` over it, or a save in place: the same inode, so the store's entry too
        handle.seek(200)
        handle.write(b"\x00" * 64)
    packed = assemble(result, VariantStore(tmp_path / "store"), tmp_path / "generated")
    assert packed.empty and [f.reason for f in result.failures] == ["damaged_in_store"]


def test_the_store_copies_an_adopted_file_where_it_cannot_link(tmp_path, monkeypatch):
    published = plant(tmp_path / "published" / "a.jpg")

    def cross_device(*_):
        raise OSError(errno.EXDEV, "cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    store = VariantStore(tmp_path / "store")
    store.adopt_file("ab12", published, published.read_bytes())
    assert store.path("ab12").read_bytes() == published.read_bytes()
    assert os.stat(store.path("ab12")).st_ino != os.stat(published).st_ino and store.check("ab12").value == "sound"


def test_a_file_changed_between_its_check_and_its_link_is_stored_as_checked(tmp_path, monkeypatch):
    published = plant(tmp_path / "published" / "a.jpg")
    checked = published.read_bytes()
    real_link = os.link

    def link_after_a_change(source, target):
        Image.new("RGB", (24, 16), (0, 0, 255)).save(source, quality=90)  # rewritten in place meanwhile
        real_link(source, target)

    monkeypatch.setattr(os, "link", link_after_a_change)
    store = VariantStore(tmp_path / "store")
    store.adopt_file("ab12", published, checked)
    assert store.path("ab12").read_bytes() == checked != published.read_bytes()
    assert store.check("ab12").value == "sound" and not list(store.root.rglob(".tmp-*"))


def test_a_fifo_in_the_import_folder_never_blocks_planning(manifest, tmp_path):
    folder = tmp_path / "published"
    first = manifest.iloc[0]
    fifo = folder / first["style"] / f"{stem(first)}_resize768_generated.jpg"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    result, reported = run_import(manifest, folder, tmp_path)  # would hang if the FIFO were opened
    assert not result.variants and first["id"] in reported


def test_a_nul_byte_is_refused_not_raised():
    refused = resolve_inside(Path("/tmp"), "a\x00b.jpg")
    assert refused.reason == "unreadable_path"


# --- template validation -----------------------------------------------------------------------

@pytest.mark.parametrize("key", ["prompt", "negative_prompt", "import_template"])
@pytest.mark.parametrize(
    ("template", "says"),
    [
        ("{year:04d} {stem}", "format spec"),
        ("{title:{style}} {stem}", "format spec"),
        ("{title!r} {stem}", "conversion"),
    ],
)
def test_format_specs_and_conversions_fail_validation_naming_the_key(key, template, says, tmp_path):
    if key != "import_template":
        template = template.replace(" {stem}", "")
    raw = {
        "ingest": {"source": "x"},
        "generate": {"backend": "import", "import_dir": str(tmp_path), "strengths": [0.4], key: template},
    }
    with pytest.raises(ParamsError) as error:
        check_params(parse_params(raw).generate)
    assert f"generate.{key}" in str(error.value) and says in str(error.value)


def test_format_specs_that_suit_the_field_pass():
    check_params(
        parse_params(
            {
                "ingest": {"source": "x"},
                "generate": {"prompt": "{title:.40}, {year:>4}", "import_template": "{strength:.2f}/{stem}.jpg"},
            }
        ).generate
    )


@pytest.mark.parametrize(
    "template", ["/{style}/{stem}.jpg", "../{stem}.jpg", "{style}//{stem}.jpg", "{style}/./{stem}.jpg"]
)
def test_an_import_template_must_stay_a_relative_path(template, tmp_path):
    with pytest.raises(ParamsError, match="generate.import_template.*component"):
        check_params(
            parse_params(
                {
                    "ingest": {"source": "x"},
                    "generate": {
                        "backend": "import",
                        "import_dir": str(tmp_path),
                        "strengths": [0.4],
                        "import_template": template,
                    },
                }
            ).generate
        )


@pytest.mark.parametrize("value", ["{style}", "{0}", "{title!r:>{year}}"])
def test_a_metadata_value_is_rendered_literally(value):
    row = {"title": value, "style": "Baroque", "year": "1650", "source_path": "Baroque/a.jpg"}
    assert render_prompt("{title}, {style}", row) == f"{value}, Baroque"
    pattern = import_pattern("{style}/{title}.jpg", row, 0.4)
    assert pattern.startswith("Baroque/") and "Baroque" not in pattern[len("Baroque/"):]
