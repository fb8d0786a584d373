"""Images packed into tar shards: read back by byte range, plain tar for other tools, the same
bytes for the same images, and a damaged shard or manifest reported instead of trusted."""
from __future__ import annotations

import os
import subprocess
import tarfile
import threading
from pathlib import Path

import pandas as pd
import pytest

from artsim.images import ImageRejected, jpeg_bytes, load_rgb
from artsim.shards import ShardMember, ShardWriter, manifest_images
from tests.helpers import random_painting


def _images(count: int) -> dict[str, bytes]:
    return {f"images/{i:04d}.jpg": jpeg_bytes(random_painting(i, (40 + i, 30))) for i in range(count)}


def _pack(folder: Path, images: dict[str, bytes], max_bytes: int = 1 << 30) -> pd.DataFrame:
    with ShardWriter(folder / "shards", max_bytes) as shards:
        rows = [{"path": name, **dict(zip(("shard", "offset", "length"), shards.add(name, data)))} for name, data in images.items()]
    return pd.DataFrame(rows)


def test_every_member_reads_back_by_offset_and_tar_extracts_the_same_bytes(tmp_path):
    images = _images(12)
    manifest = _pack(tmp_path, images)
    assert [m.read_bytes() for m in manifest_images(manifest, tmp_path)] == list(images.values())
    subprocess.run(["tar", "xf", str(tmp_path / "shards" / "000000.tar"), "-C", str(tmp_path)], check=True)
    assert all((tmp_path / name).read_bytes() == data for name, data in images.items())


def test_shards_roll_over_at_the_size_limit_and_a_big_image_gets_one_of_its_own(tmp_path):
    images = _images(12)
    limit = tarfile.RECORDSIZE + 4 * max(len(d) for d in images.values())  # a tar is at least a record long
    big = os.urandom(3 * limit)
    manifest = _pack(tmp_path, {**images, "images/big.jpg": big}, max_bytes=limit)
    sizes = {f"shards/{s.name}": s.stat().st_size for s in (tmp_path / "shards").glob("*.tar")}
    big_shard = manifest["shard"].iloc[-1]
    assert len(sizes) >= 4 and set(manifest["shard"]) == set(sizes)
    assert all(size <= limit for name, size in sizes.items() if name != big_shard)
    assert (manifest["shard"] == big_shard).sum() == 1
    assert manifest_images(manifest, tmp_path)[-1].read_bytes() == big
    assert all(tarfile.open(tmp_path / name).getnames() for name in sizes)  # no empty shard


def test_the_same_images_in_the_same_order_give_byte_identical_shards(tmp_path):
    images = _images(6)
    _pack(tmp_path / "a", images)
    _pack(tmp_path / "b", images)
    assert (tmp_path / "a/shards/000000.tar").read_bytes() == (tmp_path / "b/shards/000000.tar").read_bytes()


def test_a_writer_starts_from_an_empty_folder(tmp_path):
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "000007.tar").write_bytes(b"left by a crashed run")
    _pack(tmp_path, _images(2))
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == ["000000.tar"]


def test_a_truncated_shard_rejects_the_images_past_its_end_only(tmp_path):
    manifest = _pack(tmp_path, _images(6))
    members = manifest_images(manifest, tmp_path)
    shard = tmp_path / "shards" / "000000.tar"
    os.truncate(shard, members[3].offset + 10)
    assert load_rgb(members[2]).size == (42, 30)
    with pytest.raises(ImageRejected) as rejected:
        load_rgb(members[4])
    assert rejected.value.reason == "truncated_shard"


def test_a_fifo_in_place_of_a_shard_is_rejected_without_blocking(tmp_path):
    fifo = tmp_path / "000000.tar"
    os.mkfifo(fifo)
    outcome: list[str] = []
    reader = threading.Thread(target=lambda: outcome.append(_reason(ShardMember(fifo, 0, 10))), daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert outcome == ["not_a_regular_file"]


def _reason(member: ShardMember) -> str:
    try:
        load_rgb(member)
    except ImageRejected as exc:
        return exc.reason
    return "accepted"


@pytest.mark.parametrize("shard", ["../elsewhere/000000.tar", "/etc/000000.tar", "shards/../../000000.tar"])
def test_a_manifest_naming_a_shard_outside_its_folder_is_refused(tmp_path, shard):
    manifest = pd.DataFrame({"path": ["images/a.jpg"], "shard": [shard], "offset": [512], "length": [10]})
    with pytest.raises(ValueError, match="outside its folder"):
        manifest_images(manifest, tmp_path / "out")


def test_a_manifest_without_shard_columns_names_loose_files(tmp_path):
    manifest = pd.DataFrame({"path": ["images/a.jpg", "images/b.jpg"]})
    assert manifest_images(manifest, tmp_path) == [tmp_path / "images/a.jpg", tmp_path / "images/b.jpg"]
