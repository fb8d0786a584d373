"""Every kind of bad or odd file a real WikiArt download holds ends kept (normalised) or skipped with a reason."""
import io
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from artsim.core.images import load_rgb
from artsim.core.shards import manifest_images
from artsim.ingest.run import IngestSettings, ingest, read_manifest
from artsim.ingest.sources.formats import read_folder
from tests.support.helpers import random_painting

STYLE = "Odd_Files"


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims huge dimensions but carries almost no data (a decompression bomb's header)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def exif_rotated_jpeg(path: Path) -> None:
    image = random_painting(11, size=(120, 60))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    image.save(path, exif=exif)


def animated_gif(path: Path) -> None:
    frames = [Image.new("RGB", (64, 64), colour) for colour in ((200, 30, 30), (30, 200, 30), (30, 30, 200))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)


def tiff_with_rational_strip_offsets(path: Path) -> None:
    """Pillow's TIFF reader raises TypeError (not OSError) on a StripOffsets tag typed RATIONAL."""
    random_painting(13, size=(48, 40)).save(path, format="TIFF")
    data = bytearray(path.read_bytes())
    directory = struct.unpack_from("<I", data, 4)[0]
    for entry in range(directory + 2, directory + 2 + 12 * struct.unpack_from("<H", data, directory)[0], 12):
        if struct.unpack_from("<H", data, entry)[0] == 273:  # StripOffsets
            struct.pack_into("<H", data, entry + 2, 5)  # RATIONAL
    path.write_bytes(bytes(data))


def build_odd_source(root: Path, outside: Path) -> dict[str, str]:
    """Writes the odd files; returns file name -> expected outcome ('kept' or a skip reason)."""
    folder = root / STYLE
    folder.mkdir(parents=True)
    good = random_painting(0, size=(200, 150))
    expected = {}

    def add(name: str, outcome: str, writer) -> None:
        writer(folder / name)
        expected[f"{STYLE}/{name}"] = outcome

    add("zero-bytes.jpg", "empty_file", lambda p: p.write_bytes(b""))
    good.save(folder / "whole.jpg")
    data = (folder / "whole.jpg").read_bytes()
    (folder / "whole.jpg").unlink()
    add("truncated.jpg", "corrupt_image", lambda p: p.write_bytes(data[: len(data) // 3]))
    add("random-bytes.jpg", "not_an_image", lambda p: p.write_bytes(np.random.default_rng(1).bytes(4096)))
    add("a-text-file.png", "not_an_image", lambda p: p.write_text("hello, I am not a picture\n"))
    add(
        "grey16.png",
        "kept",
        lambda p: cv2.imwrite(str(p), (np.linspace(0, 65535, 100 * 80).reshape(80, 100)).astype(np.uint16)),
    )
    add("rgb16.png", "kept", lambda p: cv2.imwrite(str(p), np.full((80, 100, 3), 40000, np.uint16)))
    add("cmyk.jpg", "kept", lambda p: random_painting(2, size=(120, 90)).convert("CMYK").save(p))
    add("greyscale.jpg", "kept", lambda p: random_painting(3).convert("L").save(p))
    add("grey-alpha.png", "kept", lambda p: random_painting(4).convert("LA").save(p))
    add("rgba-transparent.png", "kept", lambda p: Image.new("RGBA", (80, 60), (255, 0, 0, 0)).save(p))
    add(
        "palette.png",
        "kept",
        lambda p: random_painting(5).convert("P", palette=Image.Palette.ADAPTIVE).save(p, transparency=0),
    )
    add("one-bit.png", "kept", lambda p: random_painting(6).convert("1").save(p))
    add("animated.gif", "kept", animated_gif)
    add("scan.tiff", "kept", lambda p: random_painting(7).save(p))
    add("web.webp", "kept", lambda p: random_painting(8).save(p, quality=90))
    add("exif-rotated.jpg", "kept", exif_rotated_jpeg)
    add("tiny.png", "too_small", lambda p: random_painting(9, size=(20, 12)).save(p))
    add("a-folder.jpg", "not_a_regular_file", lambda p: p.mkdir())
    add("bad-tiff-tag.tif", "corrupt_image", tiff_with_rational_strip_offsets)
    add("bomb.png", "too_many_pixels", lambda p: p.write_bytes(png_header_only(100_000, 100_000)))
    add("original name.jpg", "kept", lambda p: good.save(p, quality=95))
    add(
        "same content, other name.jpg",
        "duplicate",
        lambda p: p.write_bytes((folder / "original name.jpg").read_bytes()),
    )
    add("Ukiyo-e «Ōkubi-e» l'artiste \"quoted\".png", "kept", lambda p: random_painting(10).save(p))
    outside.mkdir(parents=True, exist_ok=True)
    random_painting(12).save(outside / "secret.png")
    add("link-outside.png", "link_outside_source", lambda p: os.symlink(outside / "secret.png", p))
    return expected


@pytest.fixture(scope="module")
def ingested_odd(tmp_path_factory):
    base = tmp_path_factory.mktemp("odd")
    expected = build_odd_source(base / "source", base / "elsewhere")
    report = ingest(read_folder(base / "source"), base / "out", IngestSettings(max_pixels=50_000_000, workers=2))
    manifest = read_manifest(base / "out")
    skipped = pd.DataFrame(report.skipped_files)
    return expected, manifest, report, skipped, base / "out"


def test_each_file_ends_kept_or_skipped_with_its_expected_reason(ingested_odd):
    expected, manifest, report, skipped, _ = ingested_odd
    outcomes = dict(zip(skipped["source_path"], skipped["reason"]))
    outcomes.update({name: "kept" for name in manifest["source_path"]})
    assert outcomes == expected
    assert report.as_metrics()["kept"] == sum(v == "kept" for v in expected.values())


def test_kept_images_are_rgb_and_exif_orientation_is_applied(ingested_odd):
    _, manifest, _, _, out = ingested_odd
    rows = manifest.set_index("source_path")
    for image in manifest_images(manifest, out):
        with Image.open(io.BytesIO(image.read_bytes())) as img:
            assert img.mode == "RGB"
    rotated = rows.loc[f"{STYLE}/exif-rotated.jpg"]
    assert (rotated["width"], rotated["height"]) == (60, 120)


def pixels(out: Path, manifest: pd.DataFrame, name: str) -> np.ndarray:
    position = list(manifest["source_path"]).index(f"{STYLE}/{name}")
    return np.asarray(load_rgb(manifest_images(manifest, out)[position]), dtype=np.float64)


def test_colour_conversions_keep_what_the_image_shows(ingested_odd):
    _, manifest, _, _, out = ingested_odd
    assert pixels(out, manifest, "rgba-transparent.png").mean() > 250  # transparent -> white, not black
    grey16 = pixels(out, manifest, "grey16.png")
    assert grey16.min() < 10 and grey16.max() > 245  # 16-bit range scaled, not clipped at 255
    assert abs(pixels(out, manifest, "rgb16.png").mean() - 40000 / 257) < 3
    gif = pixels(out, manifest, "animated.gif")
    assert gif[..., 0].mean() > 150 and gif[..., 1].mean() < 80  # the first (red) frame
    cmyk = pixels(out, manifest, "cmyk.jpg")
    reference = np.asarray(random_painting(2, size=(120, 90)), dtype=np.float64)
    assert np.abs(cmyk - reference).mean() < 12


def test_skip_report_names_each_file_and_its_reason(ingested_odd):
    expected, _, _, skipped, _ = ingested_odd
    assert set(skipped.columns) == {"source_path", "reason", "detail"}
    assert set(skipped["source_path"]) == {name for name, outcome in expected.items() if outcome != "kept"}
    assert "original name.jpg" in skipped.set_index("reason").loc["duplicate", "detail"]
    details = skipped.set_index("source_path")["detail"]
    assert details[f"{STYLE}/bad-tiff-tag.tif"].startswith("TypeError: ")  # the decoder's own exception, named
    assert details[f"{STYLE}/a-folder.jpg"] == "a folder"


def test_metadata_rows_that_escape_the_root_or_name_missing_files_are_reported(sample_copy, tmp_path):
    outside = tmp_path / "outside.jpg"
    random_painting(3).save(outside)
    with open(sample_copy / "metadata.csv", "a", encoding="utf-8") as handle:
        handle.write("../outside.jpg,Someone,Escape,,Impressionism,portrait,1,1,x,x\n")
        handle.write("Impressionism/not-there.jpg,Someone,Ghost,,Impressionism,portrait,1,1,x,x\n")
    report = ingest(read_folder(sample_copy), tmp_path / "out", IngestSettings())
    manifest = read_manifest(tmp_path / "out")
    assert report.skipped_by_reason == {"path_escapes_root": 1, "missing_file": 1}
    assert len(manifest) == 29


def test_csv_with_bom_extra_columns_and_missing_values(tmp_path):
    source = tmp_path / "src"
    (source / "Cubism").mkdir(parents=True)
    random_painting(1).save(source / "Cubism" / "pablo-picasso_guitar-1913.jpg")
    random_painting(2).save(source / "Cubism" / "juan-gris_still-life.jpg")
    (source / "metadata.csv").write_text(
        "\ufefffilename,artist,title,year,style,genre,notes\n"
        "Cubism/pablo-picasso_guitar-1913.jpg,Pablo Picasso,Guitar,1913,,still_life,extra column\n"
        "Cubism/juan-gris_still-life.jpg,,,,,,\n",
        encoding="utf-8",
    )
    report = ingest(read_folder(source), tmp_path / "out", IngestSettings())
    manifest = read_manifest(tmp_path / "out")
    rows = manifest.set_index("source_path")
    picasso = rows.loc["Cubism/pablo-picasso_guitar-1913.jpg"]
    assert (picasso["artist"], picasso["style"], picasso["genre"]) == ("Pablo Picasso", "Cubism", "still_life")
    gris = rows.loc["Cubism/juan-gris_still-life.jpg"]
    assert (gris["artist"], gris["title"], gris["style"], gris["genre"], gris["year"]) == (
        "Juan Gris",
        "Still Life",
        "Cubism",
        "unknown",
        "",
    )
    assert report.as_metrics()["skipped"] == 0
