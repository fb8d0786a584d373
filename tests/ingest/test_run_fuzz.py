"""Mutated image files (seeded, a few thousand) never crash ingest: each ends kept or skipped with a reason."""
import io
import struct

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from artsim.ingest.run import IngestSettings, _normalise, ingest, read_manifest
from artsim.ingest.sources.formats import SourceImage, SourceProblem, read_folder
from tests.support.helpers import random_painting

# Pillow warns (corrupt EXIF, truncated tags) on many mutants; the outcome is what is tested.
pytestmark = pytest.mark.filterwarnings("ignore")
CASES = 5000
FOLDER_CASES = 300
# What a decodable-looking but broken file may be skipped as; anything else is a bug.
DECODE_REASONS = {"empty_file", "not_an_image", "corrupt_image", "too_small", "too_many_pixels", "file_too_large"}
INTERESTING_WORDS = [
    b"\x00\x00\x00\x00",
    b"\xff\xff\xff\xff",
    b"\x7f\xff\xff\xff",
    b"\x80\x00\x00\x00",
    b"\x00\x00\x01\x00",
]


def encoded(image: Image.Image, **save_args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, **save_args)
    return buffer.getvalue()


def valid_files() -> dict[str, bytes]:
    """Small valid files in the formats and variants WikiArt downloads hold."""
    rgb = random_painting(0, size=(48, 40))
    exif = Image.Exif()
    exif[0x0112] = 6
    frames = [random_painting(seed, size=(40, 40)) for seed in (1, 2)]
    return {
        "baseline.jpg": encoded(rgb, format="JPEG", quality=90),
        "progressive-exif.jpg": encoded(rgb, format="JPEG", progressive=True, exif=exif),
        "cmyk.jpg": encoded(rgb.convert("CMYK"), format="JPEG"),
        "rgb.png": encoded(rgb, format="PNG"),
        "rgba.png": encoded(rgb.convert("RGBA"), format="PNG"),
        "palette.png": encoded(rgb.convert("P", palette=Image.Palette.ADAPTIVE), format="PNG", transparency=0),
        "grey16.png": encoded(Image.fromarray(np.arange(48 * 40, dtype=np.uint16).reshape(40, 48) * 30), format="PNG"),
        "raw.tif": encoded(rgb, format="TIFF"),
        "lzw.tif": encoded(rgb, format="TIFF", compression="tiff_lzw"),
        "deflate.tif": encoded(rgb, format="TIFF", compression="tiff_adobe_deflate"),
        "packbits.tif": encoded(rgb.convert("L"), format="TIFF", compression="packbits"),
        "lossy.webp": encoded(rgb, format="WEBP", quality=80),
        "lossless.webp": encoded(rgb.convert("RGBA"), format="WEBP", lossless=True),
        "animated.gif": encoded(frames[0], format="GIF", save_all=True, append_images=frames[1:], duration=50),
    }


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One random corruption of the kinds that break parsers: bit flips, overwritten fields, cuts, splices."""
    if not data:
        return data
    if data[:4] == b"II*\0" and rng.random() < 0.5:
        return mutate_tiff_entry(data, rng)
    buffer = bytearray(data)
    kind = rng.integers(6)
    # Headers and tables sit near the start: aim there half of the time.
    position = int(rng.integers(min(len(buffer), 128) if rng.random() < 0.5 else len(buffer)))
    if kind == 0:
        for _ in range(rng.integers(1, 5)):
            buffer[int(rng.integers(len(buffer)))] ^= 1 << int(rng.integers(8))
    elif kind == 1:
        count = int(rng.integers(1, 9))
        buffer[position:position + count] = rng.bytes(count)
    elif kind == 2:
        word = INTERESTING_WORDS[rng.integers(len(INTERESTING_WORDS))]
        buffer[position:position + 4] = word[: len(buffer[position:position + 4])]
    elif kind == 3:
        del buffer[max(position, 1):]
    elif kind == 4:
        start = int(rng.integers(len(buffer)))
        buffer[position:position] = buffer[start:start + int(rng.integers(1, 64))]
    else:
        del buffer[position:position + int(rng.integers(1, 64))]
    return bytes(buffer)


def mutate_tiff_entry(data: bytes, rng: np.random.Generator) -> bytes:
    """A TIFF tag of the first directory given another type, count or value: how Pillow's TIFF
    reader was found to raise TypeError (a RATIONAL StripOffsets), which byte noise rarely hits."""
    buffer = bytearray(data)
    directory = struct.unpack_from("<I", buffer, 4)[0] if len(buffer) >= 8 else len(buffer)
    if directory + 2 > len(buffer):
        return data
    entries = struct.unpack_from("<H", buffer, directory)[0]
    entry = directory + 2 + 12 * int(rng.integers(max(entries, 1)))
    if entry + 12 > len(buffer):
        return data
    field = int(rng.integers(3))
    if field == 0:
        struct.pack_into("<H", buffer, entry + 2, int(rng.integers(1, 13)))  # the type: BYTE .. DOUBLE
    else:
        struct.pack_into("<I", buffer, entry + 4 * field, int(rng.choice([0, 1, 2, 3, 7, 255, 65535, 2**31])))
    return bytes(buffer)


def mutants(count: int, seed: int) -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(seed)
    originals = list(valid_files().items())
    cases = []
    for index in range(count):
        name, data = originals[index % len(originals)]
        for _ in range(rng.integers(1, 4)):  # one to three corruptions stacked
            data = mutate(data, rng)
        cases.append((f"case-{index:05d}-{name}", data))
    return cases


def test_every_mutant_is_normalised_or_skipped_with_a_known_reason(tmp_path):
    settings = IngestSettings(max_side=64, min_side=8)
    outcomes = []
    for name, data in mutants(CASES, seed=0):
        result = _normalise(SourceImage(relative=name, data=data), settings)  # must not raise
        if isinstance(result, SourceProblem):
            assert result.reason in DECODE_REASONS, (name, result)
            outcomes.append(result.reason)
        else:
            with Image.open(io.BytesIO(result["jpeg"])) as written:
                assert written.mode == "RGB" and max(written.size) <= 64
            outcomes.append("kept")
    counts = pd.Series(outcomes).value_counts()
    # The corpus exercises both sides: many mutants still decode, many are rejected.
    assert counts.get("kept", 0) > CASES // 10 and counts.get("corrupt_image", 0) > CASES // 10


def test_ingest_of_a_folder_of_mutants_accounts_for_every_file(tmp_path):
    source = tmp_path / "source" / "Mutants"
    source.mkdir(parents=True)
    for name, data in mutants(FOLDER_CASES, seed=1):
        (source / name).write_bytes(data)
    report = ingest(
        read_folder(tmp_path / "source"), tmp_path / "out", IngestSettings(max_side=64, min_side=8, workers=2)
    )

    manifest = read_manifest(tmp_path / "out")
    skipped = pd.read_csv(tmp_path / "out/skipped.csv", keep_default_na=False)
    names = {f"Mutants/{name}" for name, _ in mutants(FOLDER_CASES, seed=1)}
    assert set(manifest["source_path"]) | set(skipped["source_path"]) == names
    assert len(manifest) + len(skipped) == FOLDER_CASES
    assert set(skipped["reason"]) <= DECODE_REASONS | {"duplicate"}
    corrupt = skipped[skipped["reason"] == "corrupt_image"]
    assert corrupt["detail"].str.match(r"^\w+: ").all()  # the exception's type leads
    assert report.kept == len(manifest)


@pytest.mark.parametrize("name", sorted(valid_files()))
def test_each_unmutated_seed_file_is_kept(tmp_path, name):
    """The corpus starts from files that decode: a mutant's rejection is the mutation's doing."""
    result = _normalise(SourceImage(relative=name, data=valid_files()[name]), IngestSettings(max_side=64, min_side=8))
    assert not isinstance(result, SourceProblem), result
