"""Images packed into tar shards: read back by byte range, plain tar for other tools, the same
bytes for the same images, untouched shards when images are added, and a damaged shard or
manifest reported instead of trusted."""
from __future__ import annotations

import hashlib
import os
import subprocess
import tarfile
import threading
from pathlib import Path

import pandas as pd
import pytest

from artsim.core.images import ImageRejected, jpeg_bytes, load_rgb
from artsim.core.shards import ShardMember, ShardWriter, bucket, manifest_images
from tests.support.helpers import random_painting


def _images(count: int, first: int = 0) -> dict[str, bytes]:
    return {f"images/{i:04d}.jpg": jpeg_bytes(random_painting(i, (40 + i, 30))) for i in range(first, first + count)}


def _pack(folder: Path, images: dict[str, bytes], max_bytes: int = 1 << 30) -> pd.DataFrame:
    with ShardWriter(folder / "shards", max_bytes) as shards:
        rows = [{"path": name, **dict(zip(("shard", "offset", "length"), shards.add(name, data, bucket(name))))}
                for name, data in images.items()]
    return pd.DataFrame(rows)


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((folder / "shards").iterdir())}


def _reason(member: ShardMember) -> str:
    try:
        load_rgb(member)
    except ImageRejected as exc:
        return exc.reason
    return "accepted"


def test_every_member_reads_back_by_offset_and_tar_extracts_the_same_bytes(tmp_path):
    images = _images(12)
    manifest = _pack(tmp_path, images)
    assert [m.read_bytes() for m in manifest_images(manifest, tmp_path)] == list(images.values())
    for shard in sorted((tmp_path / "shards").glob("*.tar")):
        assert tarfile.open(shard).getnames()  # a well-formed archive for Python's reader
        subprocess.run(["tar", "xf", str(shard), "-C", str(tmp_path)], check=True)  # and for GNU tar
    assert all((tmp_path / name).read_bytes() == data for name, data in images.items())


def test_adding_images_leaves_the_shards_they_do_not_land_in_byte_for_byte(tmp_path):
    _pack(tmp_path / "a", _images(40))
    before = _digests(tmp_path / "a")
    _pack(tmp_path / "b", {**_images(40), **_images(2, first=100)})
    after = _digests(tmp_path / "b")
    touched = {f"{bucket(name)}.tar" for name in _images(2, first=100)}
    assert {name for name in after if before.get(name) != after[name]} == touched
    assert len(before) > 10  # most shards were there before and kept their bytes


def test_the_same_images_in_the_same_order_give_byte_identical_shards(tmp_path):
    images = _images(6)
    _pack(tmp_path / "a", images)
    _pack(tmp_path / "b", images)
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")


def test_a_full_shard_continues_in_a_next_part_and_a_big_image_fits_alone(tmp_path):
    images = _images(12)
    limit = 5 * max(len(d) for d in images.values())
    big = os.urandom(3 * limit)
    with ShardWriter(tmp_path / "shards", limit) as shards:
        located = [shards.add(name, data, "aa") for name, data in {**images, "images/big.jpg": big}.items()]
    sizes = {p.name: p.stat().st_size for p in (tmp_path / "shards").iterdir()}
    big_shard = located[-1][0].split("/")[-1]
    assert len(sizes) >= 4 and set(sizes) == {s.split("/")[-1] for s, _, _ in located}
    assert all(size <= limit for name, size in sizes.items() if name != big_shard)
    assert sum(1 for s, _, _ in located if s.endswith(big_shard)) == 1
    assert ShardMember(tmp_path / located[-1][0], *located[-1][1:]).read_bytes() == big


def test_a_writer_starts_from_an_empty_folder(tmp_path):
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "zz.tar").write_bytes(b"left by a crashed run")
    manifest = _pack(tmp_path, _images(2))
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == sorted(
        {s.split("/")[-1] for s in manifest["shard"]}
    )


def test_a_truncated_shard_rejects_the_images_past_its_end_only(tmp_path):
    with ShardWriter(tmp_path / "shards") as shards:
        located = [shards.add(name, data, "aa") for name, data in _images(6).items()]
    members = [ShardMember(tmp_path / s, o, n) for s, o, n in located]
    os.truncate(members[3].shard, members[3].offset + 10)
    assert [_reason(m) for m in members] == ["accepted"] * 3 + ["truncated_shard"] * 3


def test_a_row_pointing_at_another_members_bytes_is_rejected_not_decoded(tmp_path):
    manifest = _pack(tmp_path, _images(4))
    swapped = manifest.copy()
    swapped.loc[0, ["shard", "offset", "length"]] = manifest.loc[1, ["shard", "offset", "length"]].to_numpy()
    shifted = manifest.assign(offset=manifest["offset"] + 512)
    assert [_reason(image) for image in manifest_images(swapped, tmp_path)][:2] == ["shard_mismatch", "accepted"]
    assert set(_reason(image) for image in manifest_images(shifted, tmp_path)) <= {"shard_mismatch", "truncated_shard"}


def test_a_row_with_a_missing_or_absurd_location_is_one_rejected_image(tmp_path):
    manifest = _pack(tmp_path, _images(4)).astype({"offset": "float64", "length": "float64"})
    manifest.loc[0, "offset"], manifest.loc[1, "length"], manifest.loc[2, "offset"] = float("nan"), 1e15, 700.5
    images = manifest_images(manifest, tmp_path)
    assert [_reason(image) for image in images] == [
        "bad_shard_location",
        "truncated_shard",
        "bad_shard_location",
        "accepted",
    ]


def test_a_fifo_in_place_of_a_shard_is_rejected_without_blocking(tmp_path):
    fifo = tmp_path / "aa.tar"
    os.mkfifo(fifo)
    outcome: list[str] = []
    reader = threading.Thread(target=lambda: outcome.append(_reason(ShardMember(fifo, 512, 10))), daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert outcome == ["not_a_regular_file"]


@pytest.mark.parametrize("shard", ["../elsewhere/aa.tar", "/etc/aa.tar", "shards/../../aa.tar"])
def test_a_manifest_naming_a_shard_outside_its_folder_is_refused(tmp_path, shard):
    manifest = pd.DataFrame({"path": ["images/a.jpg"], "shard": [shard], "offset": [512], "length": [10]})
    with pytest.raises(ValueError, match="outside its folder"):
        manifest_images(manifest, tmp_path / "out")


def test_a_manifest_without_shard_columns_names_loose_files(tmp_path):
    manifest = pd.DataFrame({"path": ["images/a.jpg", "images/b.jpg"]})
    assert manifest_images(manifest, tmp_path) == [tmp_path / "images/a.jpg", tmp_path / "images/b.jpg"]
