"""artsim.learn.model_folder: the one reader of a model folder (evaluate, index, artsim.load).

What identifies the weights must not move when the code that computes it does: the verdict
thresholds (models/verdict.json) are bound to the weights' SHA-256, and a built index to the
fingerprint; a different value would drop the shipped thresholds or re-embed every original.
"""
from __future__ import annotations

import hashlib
import json

import pytest
import torch

from artsim.core.images import file_hash
from artsim.learn import model_folder
from artsim.learn.model_folder import CARD_FILE, MODEL_DIR, WEIGHTS_FILE, ModelNotFound
from tests.support.helpers import write_untrained_model


class StoredBytes:
    """An image stored inside a bigger file (artsim.core.images.StoredImage), here in memory."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read_bytes(self) -> bytes:
        return self.data


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_untrained_model(tmp_path_factory.mktemp("model") / "siamese", image_size=32, head_hidden=8)


def test_load_gives_the_saved_model_and_its_card(folder) -> None:
    model, card = model_folder.load(folder)
    assert card["image_size"] == 32 and card["head_hidden"] == 8
    again, _ = model_folder.load(folder)
    for (name, value), (_, other) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(value, other), name


def test_weights_hash_and_fingerprint_keep_their_values(folder) -> None:
    weights = (folder / WEIGHTS_FILE).read_bytes()
    assert model_folder.weights_hash(folder) == hashlib.sha256(weights).hexdigest()
    assert model_folder.fingerprint(folder, 32) == hashlib.sha256(b"image_size=32;" + weights).hexdigest()
    assert model_folder.fingerprint(folder, 64) != model_folder.fingerprint(folder, 32)


def test_file_hash_of_a_file_and_of_a_stored_member_agree_with_a_prefix(tmp_path) -> None:
    data = b"x" * ((1 << 20) + 7)  # more than one block
    (tmp_path / "f").write_bytes(data)
    member = StoredBytes(data)
    for prefix in (b"", b"p;"):
        expected = hashlib.sha256(prefix + data).hexdigest()
        assert file_hash(tmp_path / "f", prefix=prefix) == expected == file_hash(member, prefix=prefix)


def test_resolve_finds_the_folder_in_a_workspace_and_names_what_is_missing(tmp_path, folder) -> None:
    assert model_folder.resolve(folder) == folder
    workspace = tmp_path / "workspace"
    (workspace / MODEL_DIR).mkdir(parents=True)
    (workspace / MODEL_DIR / WEIGHTS_FILE).write_bytes((folder / WEIGHTS_FILE).read_bytes())
    assert model_folder.resolve(workspace) == workspace / MODEL_DIR
    (workspace / MODEL_DIR / WEIGHTS_FILE).unlink()
    (workspace / "dvc.yaml").write_text("stages: {}\n")
    with pytest.raises(ModelNotFound, match="dvc repro"):
        model_folder.resolve(workspace)
    (workspace / "dvc.yaml").unlink()
    with pytest.raises(ModelNotFound, match="neither a model folder"):
        model_folder.resolve(workspace)
    with pytest.raises(ModelNotFound, match="no such"):
        model_folder.resolve(tmp_path / "nowhere")


@pytest.mark.parametrize("card", ["", "{not json", "[1, 2]", json.dumps({"image_size": 32}),
                                  json.dumps({"image_size": 32, "head_hidden": "eight"})])
def test_a_missing_or_damaged_card_is_named(tmp_path, folder, card) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / WEIGHTS_FILE).write_bytes((folder / WEIGHTS_FILE).read_bytes())
    if card:
        (copy / CARD_FILE).write_text(card)
    with pytest.raises(ModelNotFound, match=CARD_FILE):
        model_folder.load(copy)


def test_a_finetune_card_reads_without_the_siamese_keys(tmp_path) -> None:
    (tmp_path / CARD_FILE).write_text(json.dumps({"classes": ["a", "b"]}))
    assert model_folder.read_card(tmp_path) == {"classes": ["a", "b"]}
    with pytest.raises(ModelNotFound, match="head_hidden"):
        model_folder.read_card(tmp_path, model_folder.SIAMESE_CARD_KEYS)


def test_foreign_weights_are_named(tmp_path, folder) -> None:
    (tmp_path / CARD_FILE).write_bytes((folder / CARD_FILE).read_bytes())
    (tmp_path / WEIGHTS_FILE).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(ModelNotFound, match=WEIGHTS_FILE):
        model_folder.load(tmp_path)
