"""The comparison picture (`artsim compare --plot`, the service's /plot): panels at the images' own aspect,
the original named by its title when the workspace ingested it, the format its suffix names, an unknown
suffix refused before any work."""
from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from artsim.app import difference
from artsim.app.cli import main
from artsim.app.difference import comparison_figure, difference_maps, image_label, write_comparison_plot
from artsim.app.plot_words import PLAIN_NAMES
from artsim.app.serve import create_app
from artsim.app.service import load_state
from artsim.core import layout
from artsim.core.images import file_hash
from artsim.params import DescribeParams, ScoreWeights
from tests.support.helpers import random_painting, write_untrained_model

real_figure = comparison_figure
MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".jpg": b"\xff\xd8\xff", ".jpeg": b"\xff\xd8\xff", ".pdf": b"%PDF"}


def payload(model: float = 0.8, descriptor: float = 0.6) -> dict:
    """compare's payload (artsim.app.api.compare_payload) for the default weights."""
    weights = ScoreWeights().as_dict()
    return {
        "a": "a.png",
        "b": "b.png",
        "model_score": model,
        "descriptor_score": descriptor,
        "similarities": {name: 0.7 for name in weights} | {"color": 0.2},
        "weights": weights,
        "verdict": "likely",
        "verdict_text": "derived: likely (score 0.800 >= 0.700, ...; few pairs, a rough threshold)",
        "threshold": 0.7,
        "precision": 0.9,
        "pairs": 42,
        "positives": 21,
        "negatives": 21,
    }


def figure_of(a: Image.Image, b: Image.Image, names: tuple[str, str] = ("a.png", "b.png")):
    figure = comparison_figure(a, b, names, payload(), difference_maps(a, b, DescribeParams(size=64)))
    figure.savefig(io.BytesIO(), format="png")  # lays the figure out
    return figure


@pytest.mark.parametrize("size", [(300, 200), (200, 300)], ids=["landscape 3:2", "portrait 2:3"])
def test_images_and_difference_maps_keep_the_images_aspect(size) -> None:
    a, b = random_painting(0, size), random_painting(1, size)
    figure = figure_of(a, b)
    panels = [axis for axis in figure.axes if axis.images]
    assert len(panels) == 4  # both images, the colour map and the edge map (each over the first image)
    for axis in panels:
        box = axis.get_window_extent()
        assert box.width / box.height == pytest.approx(size[0] / size[1], rel=0.03), axis.get_title()


def test_an_ingested_original_is_named_by_its_title_and_any_other_file_by_its_name(tmp_path) -> None:
    painting, other = tmp_path / "painting.png", tmp_path / "my variant.png"
    random_painting(0).save(painting)
    random_painting(1).save(other)
    manifest = tmp_path / layout.INGESTED / layout.MANIFEST
    manifest.parent.mkdir(parents=True)
    pd.DataFrame({"hash": [file_hash(painting)], "title": ["Mona Lisa"], "artist": ["Leonardo da Vinci"]}).to_parquet(
        manifest
    )
    assert image_label(painting, tmp_path) == "Mona Lisa — Leonardo da Vinci"
    assert image_label(other, tmp_path) == "my variant.png"
    assert image_label(painting, tmp_path / "no workspace") == "painting.png"
    manifest.write_bytes(b"not parquet")  # a damaged manifest costs the title only
    assert image_label(painting, tmp_path) == "painting.png"
    pd.DataFrame({"path": ["x"]}).to_parquet(manifest)  # one without the columns
    assert image_label(painting, tmp_path) == "painting.png"
    titles = " ".join(axis.get_title() for axis in figure_of(random_painting(0), random_painting(1),
                                                             ("my variant.png", "Mona Lisa — Leonardo da Vinci")).axes)
    assert "Mona Lisa — Leonardo da Vinci" in titles and "my variant.png" in titles


def test_names_from_outside_cannot_break_the_picture(tmp_path) -> None:
    """A `$` would start matplotlib's mathtext: an unbalanced formula in a file name must not fail the plot."""
    a = random_painting(0)
    names = (r"x$\frac{$.png", "\x1b[31m" + "long title " * 30)
    write_comparison_plot(a, a, names, payload(), difference_maps(a, a, DescribeParams(size=64)), tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes().startswith(MAGIC[".png"])


@pytest.fixture(scope="module")
def pair_and_model(tmp_path_factory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("compare")
    for seed in (0, 1):
        random_painting(seed, (150, 100)).save(folder / f"p{seed}.png")
    return folder / "p0.png", folder / "p1.png", write_untrained_model(folder / "model")


def test_compare_plot_names_the_workspace_original_by_its_title(pair_and_model, tmp_path, monkeypatch) -> None:
    a, b, model = pair_and_model
    manifest = tmp_path / layout.INGESTED / layout.MANIFEST
    manifest.parent.mkdir(parents=True)
    pd.DataFrame({"hash": [file_hash(b)], "title": ["The Harvest"], "artist": ["Vincent van Gogh"]}).to_parquet(
        manifest
    )
    drawn = []
    monkeypatch.setattr(difference, "comparison_figure", lambda *args: drawn.append(args[2]) or real_figure(*args))
    plot = tmp_path / "plot.png"
    assert (
        main(["compare", str(a), str(b), "--model", str(model), "--workspace", str(tmp_path), "--plot", str(plot)]) == 0
    )
    assert drawn == [("p0.png", "The Harvest — Vincent van Gogh")] and plot.is_file()


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".jpeg", ".PDF", ".svg"])
def test_plot_writes_the_format_its_suffix_names(pair_and_model, tmp_path, suffix) -> None:
    a, b, model = pair_and_model
    out = tmp_path / f"picture{suffix}"
    assert (
        main(["compare", str(a), str(b), "--model", str(model), "--workspace", str(tmp_path), "--plot", str(out)]) == 0
    )
    data = out.read_bytes()
    if suffix == ".svg":
        assert b"<svg" in data[:1000]
    else:
        assert data.startswith(MAGIC[suffix.lower()])


@pytest.mark.parametrize("name", ["picture.gif", "picture", "picture.png.exe"])
def test_an_unknown_suffix_is_refused_before_any_work(tmp_path, capsys, name) -> None:
    """Status 2 naming the suffixes it takes, before the (missing) images and model are even looked at."""
    with pytest.raises(SystemExit) as exit_:
        main(
            [
                "compare",
                "missing-a.png",
                "missing-b.png",
                "--model",
                str(tmp_path / "none"),
                "--plot",
                str(tmp_path / name),
            ]
        )
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert all(suffix in error for suffix in (".png", ".jpg", ".svg", ".pdf")) and "missing-a" not in error
    assert not (tmp_path / name).exists()


def test_the_service_names_an_original_by_its_title(pair_and_model, tmp_path, monkeypatch) -> None:
    """POST /compare (and /plot, whose picture uses the same names) with b_original: the index's title
    (a folder's original: its file stem), not the stored file's name."""
    a, _, model = pair_and_model
    originals = tmp_path / "originals"
    originals.mkdir()
    random_painting(3).save(originals / "The Harvest.png")
    monkeypatch.setenv("ARTSIM_CACHE", str(tmp_path / "cache"))
    client = TestClient(create_app(load_state(tmp_path, model=model, originals=originals)))
    response = client.post("/compare", files={"a": ("a.png", a.read_bytes(), "image/png")},
                           data={"b_original": "The Harvest.png"})
    assert response.status_code == 200 and response.json()["b"] == "The Harvest"


def test_the_bars_name_each_part_in_force_in_plain_words() -> None:
    figure = figure_of(random_painting(0), random_painting(1))
    bars = next(axis for axis in figure.axes if axis.get_title(loc="left").startswith("The model finds them"))
    labels = [tick.get_text() for tick in bars.get_yticklabels()]
    weights = ScoreWeights().as_dict()
    assert labels[:2] == ["model score", "descriptor score"]
    assert [label.split("  (")[0] for label in labels[2:]] == [
        PLAIN_NAMES[name] for name in sorted(weights, key=weights.get, reverse=True)
    ]
