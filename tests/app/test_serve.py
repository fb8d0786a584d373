"""`artsim serve`: every endpoint, every error status, the concurrency limit (FastAPI's TestClient)."""
from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from PIL import Image

import artsim
from artsim.app.api import compare_payload, open_image
from artsim.app.cli import build_parser, main
from artsim.app.limits import ServiceLimits
from artsim.app.serve import create_app
from artsim.app.service import ServiceState, load_state
from artsim.core.shards import ShardWriter
from artsim.evaluate.verdict import ShippedThresholds, Thresholds
from artsim.index import RANKING_NAMES
from artsim.index.query import ranking_named
from artsim.index.search import Query
from artsim.learn.model_folder import weights_hash
from tests.app.test_api import png_header_only
from tests.support.helpers import random_painting, write_untrained_model
from tests.support.marks import COPIES, check_hit_verdict, marked_model, unrelated_images

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")



@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("originals")
    for seed in range(5):
        random_painting(seed).save(folder / f"painting_{seed}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return folder


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def state(model_dir, originals, cache):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ARTSIM_CACHE", str(cache))
        yield load_state(Path("."), model=model_dir, originals=originals)


@pytest.fixture(scope="module")
def built_index(model_dir, originals, tmp_path_factory) -> Path:
    """An index made by `artsim index DIR --out INDEX`."""
    out = tmp_path_factory.mktemp("index") / "index"
    assert main(["index", str(originals), "--out", str(out), "--model", str(model_dir)]) == 0
    return out


@pytest.fixture(scope="module")
def client(state) -> TestClient:
    return TestClient(create_app(state, ServiceLimits(max_image_bytes=200_000, max_pixels=400 * 400)))


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def upload(data: bytes, name: str = "query.png") -> tuple[str, bytes, str]:
    return name, data, "image/png"


def id_of(originals: Path, name: str) -> str:
    return (originals / name).relative_to(originals).as_posix()  # a folder's entry ids (artsim.index.collection)


def cli_search_json(capsys, query: Path, *options: str) -> dict:
    capsys.readouterr()
    main(["search", str(query), "--json", *options])
    return json.loads(capsys.readouterr().out)


# --- the state, without HTTP -----------------------------------------------------------------

def test_the_state_answers_each_route_from_the_model_and_the_searcher(state, originals, model_dir):
    a, b = open_image(originals / "painting_0.png"), open_image(originals / "painting_1.png")
    assert state.compare(a, b) == compare_payload(artsim.load(model_dir), a, b)
    [expected] = state.searcher.search([Query(a.name, a.image)], 3, "fused")
    found = state.search(a, 3, "fused")
    assert found["by"] == "fused" and found["results"] == [dataclasses.asdict(hit) for hit in expected.hits]
    assert found["skipped"] == [{"path": str(originals / "broken.png"), "reason": "not_an_image"}]
    assert state.original("painting_2.png") == originals / "painting_2.png" and state.original("painting_9.png") is None
    health = state.health()
    assert health["index_size"] == 6 and health["stale"] is False and health["default_by"] == state.default_ranking
    with pytest.raises(ValueError, match="one of model, phash, fused"):
        state.search(a, 3, "colour")


# --- the endpoints ---------------------------------------------------------------------------

def test_compare_returns_the_json_of_the_cli(client, model_dir, originals, capsys):
    a, b = originals / "painting_0.png", originals / "painting_1.png"
    response = client.post(
        "/compare", files={"a": upload(a.read_bytes(), "a.png"), "b": upload(b.read_bytes(), "b.png")}
    )
    assert response.status_code == 200
    assert main(["compare", str(a), str(b), "--model", str(model_dir), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    served = response.json()
    assert (served["a"], served["b"]) == ("a.png", "b.png")
    assert {k: v for k, v in served.items() if k not in "ab"} == {k: v for k, v in cli.items() if k not in "ab"}


def test_compare_with_an_original_by_id_scores_as_the_file_does(client, state, originals):
    query = random_painting(7)
    by_id = client.post(
        "/compare", files={"a": upload(png(query))}, data={"b_original": id_of(originals, "painting_2.png")}
    )
    by_file = client.post(
        "/compare", files={"a": upload(png(query)), "b": upload((originals / "painting_2.png").read_bytes())}
    )
    assert by_id.status_code == by_file.status_code == 200
    assert by_id.json()["model_score"] == by_file.json()["model_score"]
    assert by_id.json()["descriptor_score"] == by_file.json()["descriptor_score"]


def test_compare_payload_is_what_the_scorer_says(model_dir, originals):
    scorer = artsim.load(model_dir)
    a, b = open_image(originals / "painting_0.png"), open_image(originals / "painting_3.png")
    payload = compare_payload(scorer, a, b, ("x", "y"))
    comparison = scorer.score(a, b)
    assert payload == {"a": "x", "b": "y", **comparison.as_dict(), **scorer.verdict(comparison.model_score).payload()}
    assert payload["verdict"] == "none" and payload["verdict_text"].startswith("no verdict: no thresholds shipped")


@pytest.mark.parametrize("route", ["/plot", "/compare?plot=1"])
def test_the_plot_is_a_png_of_both_images_and_the_maps(client, originals, route):
    files = {
        "a": upload((originals / "painting_0.png").read_bytes()),
        "b": upload((originals / "painting_4.png").read_bytes()),
    }
    response = client.post(route, files=files)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    plot = Image.open(io.BytesIO(response.content))
    assert plot.format == "PNG" and plot.size[0] > 400


@pytest.mark.parametrize("by", RANKING_NAMES)
def test_search_by_each_ranking_returns_what_the_cli_search_json_does(
    client, model_dir, originals, cache, capsys, monkeypatch, by
):
    monkeypatch.setenv("ARTSIM_CACHE", str(cache))  # the same index in the user cache as the server's
    query = originals / "painting_3.png"
    response = client.post(
        "/search", files={"image": upload(query.read_bytes(), "painting_3.png")}, data={"top_k": "3", "by": by}
    )
    assert response.status_code == 200
    served = response.json()
    cli = cli_search_json(
        capsys, query, "--originals", str(originals), "--model", str(model_dir), "--top-k", "3", "--by", by
    )
    assert served.pop("by") == by and served.pop("query") == "painting_3.png"
    cli.pop("query")
    assert served == cli
    assert served["candidates"] == 6 and [h["rank"] for h in served["results"]] == [1, 2, 3]
    assert [s["path"] for s in served["skipped"]] == [str(originals / "broken.png")]
    assert "threshold_note" in served and all("likely_derived" in h for h in served["results"])


@pytest.fixture(scope="module")
def marked_client(originals, cache, tmp_path_factory) -> TestClient:
    """A server whose model ships each scorer's thresholds, measured on the originals' copies and pairs."""
    model = marked_model(tmp_path_factory.mktemp("marked"), sorted(originals.glob("painting_*.png")))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ARTSIM_CACHE", str(cache))
        return TestClient(create_app(load_state(Path("."), model=model, originals=originals)))


@pytest.mark.parametrize("by", RANKING_NAMES)
def test_the_service_marks_no_unrelated_image_by_any_ranking(marked_client, originals, by):
    for name, image in unrelated_images().items():
        found = marked_client.post("/search", files={"image": upload(png(image), f"{name}.png")},
                                   data={"top_k": "5", "by": by}).json()
        assert found["by"] == by and len(found["results"]) == 5
        assert [hit["likely_derived"] for hit in found["results"]] == [False] * 5, name
        assert f"(by {by})" in found["threshold_note"]
    copy = COPIES[0](Image.open(originals / "painting_2.png").convert("RGB"))
    found = marked_client.post("/search", files={"image": upload(png(copy), "copy.png")}, data={"by": by}).json()
    assert [hit["likely_derived"] for hit in found["results"]] == [True] + [False] * (len(found["results"]) - 1)
    assert found["results"][0]["id"].startswith("painting_2")
    [scorer] = ranking_named(by).judged_by
    for hit in found["results"]:  # each says why, by its ranking's own scorer
        check_hit_verdict(hit, scorer, marked_client.app.state.served.state.scorer.thresholds_of(scorer))


@pytest.mark.parametrize("by", RANKING_NAMES)
def test_search_over_a_built_index_returns_what_the_cli_does_on_it(model_dir, built_index, capsys, by):
    client = TestClient(create_app(load_state(Path("."), model=model_dir, index=built_index)))
    query = built_index.parent / "query.png"
    random_painting(11).save(query)
    served = client.post(
        "/search", files={"image": upload(query.read_bytes(), "query.png")}, data={"top_k": "4", "by": by}
    ).json()
    cli = cli_search_json(
        capsys, query, "--index", str(built_index), "--model", str(model_dir), "--top-k", "4", "--by", by
    )
    served.pop("by"), served.pop("query"), cli.pop("query")
    assert served == cli and len(served["results"]) == 4


def test_search_defaults_to_the_ranking_the_workspace_found_best(model_dir, originals, cache, tmp_path, monkeypatch):
    monkeypatch.setenv("ARTSIM_CACHE", str(cache))
    shipped = tmp_path / "models" / "siamese"
    shutil.copytree(model_dir, shipped)
    thresholds = Thresholds({0.9: 0.5, 0.99: 0.8}, {0.9: 1.0, 0.99: 0.5}, 10, 10)
    ShippedThresholds(weights_hash(shipped), thresholds, default_by="phash").save(shipped.parent / "verdict.json")
    client = TestClient(create_app(load_state(tmp_path, originals=originals)))
    found = client.post("/search", files={"image": upload((originals / "painting_1.png").read_bytes())}).json()
    assert found["by"] == "phash" and client.get("/health").json()["default_by"] == "phash"


def test_an_index_built_with_another_model_is_refused(model_dir, built_index, tmp_path, capsys):
    other_model = write_untrained_model(tmp_path / "other", seed=1)
    assert artsim.load(other_model).fingerprint != artsim.load(model_dir).fingerprint
    assert main(["serve", "--model", str(other_model), "--index", str(built_index)]) == 2
    assert "built with another model: rebuild it with `artsim index`" in capsys.readouterr().err


def test_a_workspace_index_of_another_model_is_rebuilt_in_the_user_cache(
    model_dir, built_index, originals, tmp_path, monkeypatch
):
    monkeypatch.setenv("ARTSIM_CACHE", str(tmp_path / "cache"))
    workspace = ingested_workspace(tmp_path / "ws", sorted(originals.glob("painting_*.png")))
    other_model = write_untrained_model(tmp_path / "other", seed=1)
    assert main(["index", str(workspace), "--out", str(workspace / "data" / "index"), "--model", str(other_model)]) == 0
    state = load_state(workspace, model=model_dir)
    assert state.opened.folder.is_relative_to(tmp_path / "cache")  # not the workspace's data/index
    health = TestClient(create_app(state)).get("/health").json()
    assert health["index_model_match"] is True and health["index_size"] == 5
    assert (
        load_state(workspace, model=other_model).opened.folder == workspace / "data" / "index"
    )  # its own model: used as built


def test_every_search_result_is_served_by_its_id(client, originals):
    found = client.post("/search", files={"image": upload(png(random_painting(9)))}, data={"top_k": "5"}).json()
    for hit in found["results"]:
        response = client.get(f"/original/{hit['id']}")
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        assert response.content == Path(hit["path"]).read_bytes()


def test_health_names_the_model_and_the_index_and_notices_a_change(model_dir, originals, tmp_path, monkeypatch):
    monkeypatch.setenv("ARTSIM_CACHE", str(tmp_path / "cache"))
    collection = tmp_path / "collection"
    collection.mkdir()
    for name in ("painting_0.png", "painting_1.png"):
        (collection / name).write_bytes((originals / name).read_bytes())
    client = TestClient(create_app(load_state(Path("."), model=model_dir, originals=collection)))
    health = client.get("/health").json()
    fingerprint = artsim.load(model_dir).fingerprint
    assert (
        health["model_fingerprint"] == health["index_model_fingerprint"] == fingerprint
        and health["index_model_match"] is True
    )
    assert health["index_size"] == 2 and health["stale"] is False and health["search_by"] == sorted(RANKING_NAMES)
    assert health["requests_admitted"] == 0
    (collection / "new.png").write_bytes((originals / "painting_2.png").read_bytes())
    assert client.get("/health").json()["stale"] is True


# ann.faiss: the approximate index, which only a collection past artsim.index.ann.EXACT_LIMIT has (none here): one
# written since loading (the index rebuilt past the limit) is a change as much as a rewritten one.
@pytest.mark.parametrize("rewritten", ["norms.npy", "ann.faiss"])
def test_health_notices_the_index_rewritten_since_loading(model_dir, built_index, tmp_path, rewritten):
    index = tmp_path / "index"
    index.mkdir()
    for part in built_index.iterdir():
        (index / part.name).write_bytes(part.read_bytes())
    client = TestClient(create_app(load_state(Path("."), model=model_dir, index=index)))
    assert client.get("/health").json()["stale"] is False
    before = (index / rewritten).read_bytes() if (index / rewritten).exists() else b""
    (index / rewritten).write_bytes(before + b"\0")
    health = client.get("/health").json()
    assert health["stale"] is True and health["changed"] == [rewritten]


def test_health_notices_the_verdict_thresholds_shipped_since_loading(model_dir, built_index, tmp_path):
    shipped = tmp_path / "models" / "siamese"
    shutil.copytree(model_dir, shipped)
    client = TestClient(create_app(load_state(Path("."), model=shipped, index=built_index)))
    assert client.get("/health").json()["stale"] is False
    thresholds = Thresholds({0.9: 0.5, 0.99: 0.8}, {0.9: 1.0, 0.99: 0.5}, 10, 10)
    ShippedThresholds(weights_hash(shipped), thresholds).save(shipped.parent / "verdict.json")  # evaluate reran
    health = client.get("/health").json()
    assert health["stale"] is True and health["changed"] == ["verdict.json"]


def test_the_page_and_its_files_come_from_the_server_only(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "http://" not in page.text and "https://" not in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        response = client.get(asset)
        assert response.status_code == 200 and "http://" not in response.text and "https://" not in response.text


def test_the_openapi_page_lists_every_endpoint(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/compare", "/plot", "/search", "/original/{image_id}", "/health"} <= set(paths)
    assert "multipart/form-data" in paths["/search"]["post"]["requestBody"]["content"]
    assert client.get("/docs").status_code == 200


def asset_urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)=["']([^"']+)["']|url: *["']([^"']+)["']""", html)


@pytest.mark.parametrize("page, assets", [("/docs", {"swagger-ui-bundle.js", "swagger-ui.css"}),
                                          ("/redoc", {"redoc.standalone.js"})])
def test_the_api_docs_load_nothing_from_elsewhere_and_their_assets_are_served(client, page, assets):
    html = client.get(page).text
    assert not re.search(r"https?:|//", html), "an external URL in " + page
    urls = {url for pair in asset_urls(html) for url in pair if url}
    assert {url.rsplit("/", 1)[-1] for url in urls} >= assets | {"favicon.png"}
    for url in urls - {"/openapi.json"}:
        response = client.get(url)
        assert response.status_code == 200 and len(response.content) > 1000, url
    assert "/openapi.json" in html


# --- untrusted input: every error status, with a reason, never a traceback --------------------

def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and body["detail"] and "Traceback" not in response.text


@pytest.mark.parametrize("data, status, code", [
    (b"", 400, "empty_file"),
    (b"not an image at all", 415, "not_an_image"),
    (png(random_painting(1))[:300], 400, "corrupt_image"),
    (png_header_only(20_000, 20_000), 413, "too_many_pixels"),  # over max_pixels: refused from the header, undecoded
    (b"\0" * 200_001, 413, "image_too_large"),
])
def test_a_bad_image_is_refused_with_its_reason(client, data, status, code):
    assert_error(client.post("/search", files={"image": upload(data)}), status, code)
    assert_error(client.post("/compare", files={"a": upload(png(random_painting(2))), "b": upload(data)}), status, code)


def test_a_body_over_the_limit_is_refused_from_content_length_and_from_the_stream(client):
    limit = ServiceLimits(max_image_bytes=200_000).max_request_bytes
    declared = client.post(
        "/search",
        content=b"x",
        headers={"content-length": str(limit + 1), "content-type": "multipart/form-data; boundary=b"},
    )
    assert_error(declared, 413, "request_too_large")

    def chunks():  # no Content-Length: sent chunked, cut off once past the limit
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536
    streamed = client.post("/search", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert_error(streamed, 413, "request_too_large")


@pytest.mark.parametrize(
    "files, data, status, code",
    [
        ({}, {}, 400, "missing_field"),
        ({"a": ("a.png", b"x", "image/png")}, {}, 400, "missing_field"),
        (
            {"a": ("a.png", b"x", "image/png")},
            {"b_original": "../../etc/passwd"},
            404,
            "unknown_original",
        ),  # not an entry id
        ({"a": ("a.png", b"x", "image/png")}, {"b_original": "painting_0.png\x1b[2J"}, 400, "bad_id"),
        ({"a": ("a.png", b"x", "image/png")}, {"b_original": "0123456789abcdef"}, 404, "unknown_original"),
    ],
)
def test_compare_names_the_field_that_is_wrong(client, files, data, status, code):
    assert_error(client.post("/compare", files=files, data=data), status, code)


@pytest.mark.parametrize("data, status", [({"top_k": "0"}, 400), ({"top_k": "many"}, 400), ({"top_k": "101"}, 400),
                                          ({"by": "colour"}, 400)])
def test_search_refuses_a_bad_option_naming_what_is_allowed(client, data, status):
    response = client.post("/search", files={"image": upload(png(random_painting(3)))}, data=data)
    assert_error(response, status, "bad_field")
    assert ("1 to 100" if "top_k" in data else "model") in response.json()["detail"]


def test_a_json_body_is_a_400_not_a_500(client):
    assert_error(client.post("/compare", json={"a": "x"}), 400, "missing_field")


@pytest.mark.parametrize(
    "image_id, status",
    [
        ("..%2F..%2Fetc%2Fpasswd", 404),
        ("../../etc/passwd", 404),
        ("x" * 1025, 400),
        ("painting_0.png%00", 400),
        ("0123456789abcdef", 404),
        ("%2Fetc%2Fpasswd", 404),
    ],
)
def test_an_original_id_never_reaches_the_filesystem(client, image_id, status):
    response = client.get(f"/original/{image_id}")
    assert response.status_code == status and "root:" not in response.text


def test_an_index_location_leading_out_of_the_collection_is_not_served(state, tmp_path):
    (tmp_path / "secret.png").write_bytes(png(random_painting(5)))
    entries = dataclasses.replace(state.opened.index.entries, locations=["../" * 20 + str(tmp_path / "secret.png")[1:],
                                                                         *state.opened.index.entries.locations[1:]])
    edited = dataclasses.replace(state.opened, index=dataclasses.replace(state.opened.index, entries=entries))
    client = TestClient(create_app(ServiceState(state.scorer, edited)))
    first_id = entries.ids[0]
    assert_error(client.get(f"/original/{first_id}"), 404, "unreadable_original")
    assert client.get(f"/original/{entries.ids[1]}").status_code == 200


def test_a_fifo_in_the_collection_cannot_hang_the_server(model_dir, originals, tmp_path, monkeypatch):
    monkeypatch.setenv("ARTSIM_CACHE", str(tmp_path / "cache"))
    collection = tmp_path / "collection"
    collection.mkdir()
    for name in ("painting_0.png", "painting_1.png"):
        (collection / name).write_bytes((originals / name).read_bytes())
    client = TestClient(create_app(load_state(Path("."), model=model_dir, originals=collection)))
    (collection / "painting_0.png").unlink()
    os.mkfifo(collection / "painting_0.png")  # the original replaced by a FIFO after startup
    assert_error(client.get("/original/painting_0.png"), 404, "unreadable_original")
    response = client.post(
        "/compare", files={"a": upload(png(random_painting(1)))}, data={"b_original": "painting_0.png"}
    )
    assert_error(response, 404, "unreadable_original")


# --- bounded concurrency ---------------------------------------------------------------------

def test_requests_beyond_the_concurrency_and_queue_limits_get_503_and_the_admitted_ones_finish(state, monkeypatch):
    inside, release = threading.Event(), threading.Event()
    real_compare = state.compare

    def slow_compare(a, b):
        inside.set()
        assert release.wait(30)
        return real_compare(a, b)

    monkeypatch.setattr(state, "compare", slow_compare)
    client = TestClient(create_app(state, ServiceLimits(max_concurrent=1, max_queue=1)))
    files = {"a": upload(png(random_painting(1))), "b": upload(png(random_painting(2)))}
    results: list[int] = []
    first = threading.Thread(target=lambda: results.append(client.post("/compare", files=files).status_code))
    second = threading.Thread(target=lambda: results.append(client.post("/compare", files=files).status_code))
    first.start()
    try:
        assert inside.wait(30)  # the first computes; the second will wait in the queue
        second.start()
        for _ in range(600):  # until the second is admitted: /health is cheap, never queued
            if client.get("/health").json()["requests_admitted"] == 2:
                break
            threading.Event().wait(0.05)
        assert_error(client.post("/compare", files=files), 503, "busy")
        assert_error(client.post("/search", files={"image": upload(png(random_painting(3)))}), 503, "busy")
    finally:
        release.set()
        first.join(30), second.join(30)
    assert results == [200, 200]
    assert client.post("/compare", files=files).status_code == 200  # the slots are given back


# --- the command -----------------------------------------------------------------------------

def test_serve_binds_to_loopback_by_default_and_needs_a_token_otherwise(
    monkeypatch, model_dir, originals, tmp_path, capsys
):
    monkeypatch.setenv("ARTSIM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ARTSIM_TOKEN", raising=False)
    assert build_parser().parse_args(["serve"]).host == "127.0.0.1"
    calls = []
    monkeypatch.setattr("uvicorn.run", lambda app, host, port, **_: calls.append((host, port)))
    args = ["serve", "--model", str(model_dir), "--originals", str(originals), "--port", "8123"]
    assert main(args) == 0
    assert calls == [("127.0.0.1", 8123)] and "warning" not in capsys.readouterr().err
    assert (
        main([*args, "--host", "0.0.0.0"]) == 2 and len(calls) == 1
    )  # refused before loading (tests/app/test_auth.py)
    assert "--token" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["serve", "--port", "70000"], ["serve", "--max-concurrent", "0"]])
def test_serve_refuses_a_bad_option_in_one_line(capsys, args):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1


def test_serve_without_a_model_exits_2_in_one_line(capsys, tmp_path):
    assert main(["serve", "--workspace", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_serve_help_starts_fast_without_torch_or_fastapi():
    code = (
        "import sys\nfrom artsim.app.cli import main\n"
        "try:\n    main(['serve', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules, 'fastapi' in sys.modules, file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "--index" in done.stdout and done.stderr.strip() == "False False"


def ingested_workspace(workspace: Path, paintings: list[Path]) -> Path:
    """A workspace whose data/ingested holds `paintings` in a shard, ids 0000…, titles their stems."""
    ingested = workspace / "data" / "ingested"
    with ShardWriter(ingested / "shards") as shards:
        located = [shards.add(f"images/{i:016x}.png", p.read_bytes(), "aa") for i, p in enumerate(paintings)]
    pd.DataFrame(
        {
            "id": [f"{i:016x}" for i in range(len(paintings))],
            "path": [f"images/{i:016x}.png" for i in range(len(paintings))],
            "artist": ["someone"] * len(paintings),
            "title": [p.stem for p in paintings],
            "shard": [s for s, _, _ in located],
            "offset": [o for _, o, _ in located],
            "length": [n for _, _, n in located],
        }
    ).to_parquet(ingested / "manifest.parquet")
    return workspace


def test_a_workspace_serves_its_ingested_originals_by_their_manifest_ids(model_dir, originals, tmp_path, monkeypatch):
    monkeypatch.setenv("ARTSIM_CACHE", str(tmp_path / "cache"))
    paintings = sorted(originals.glob("painting_*.png"))
    client = TestClient(create_app(load_state(ingested_workspace(tmp_path / "ws", paintings), model=model_dir)))
    assert client.get("/health").json()["index_size"] == len(paintings)
    found = client.post("/search", files={"image": upload(paintings[2].read_bytes())}, data={"top_k": "5"}).json()
    assert sorted(hit["id"] for hit in found["results"]) == [f"{i:016x}" for i in range(5)]
    for hit in found["results"]:
        assert client.get(f"/original/{hit['id']}").content == paintings[int(hit["id"], 16)].read_bytes()
        assert hit["title"] == paintings[int(hit["id"], 16)].stem and hit["artist"] == "someone"
        assert hit["export_id"] == hit["id"]  # what `artsim export image ID OUT` takes
    by_id = client.post("/compare", files={"a": upload(paintings[2].read_bytes())}, data={"b_original": f"{2:016x}"})
    assert by_id.status_code == 200 and by_id.json()["descriptor_score"] == pytest.approx(1.0)


def test_each_fault_costs_only_its_own_result_with_the_reason_the_cli_gives(client, model_dir, originals, cache,
                                                                          tmp_path, capsys, monkeypatch):
    """One behaviour per fault: the service refuses the request with the reason code that `artsim search` puts in
    that query's result, and answers the next request; the CLI answers its other queries and exits 2."""
    monkeypatch.setenv("ARTSIM_CACHE", str(cache))
    faults = {"empty_file": b"", "not_an_image": b"not an image at all",
              "corrupt_image": png(random_painting(1))[:300], "too_many_pixels": png_header_only(100_000, 100_000)}
    paths = {code: tmp_path / f"{code}.png" for code in faults}
    for code, data in faults.items():
        paths[code].write_bytes(data)
    good = originals / "painting_0.png"
    status = main(["search", *map(str, paths.values()), str(good), "--originals", str(originals),
                   "--model", str(model_dir), "--json"])
    answered = {r["query"]: r for r in json.loads(capsys.readouterr().out)}
    assert status == 2 and answered[str(good)]["results"] and "error" not in answered[str(good)]
    for code, data in faults.items():
        assert f"unusable image ({code}" in answered[str(paths[code])]["error"]
        refused = client.post("/search", files={"image": upload(data)})
        assert refused.status_code in (400, 413, 415) and refused.json()["error"] == code
        assert client.post("/search", files={"image": upload(good.read_bytes())}).json()["results"]
