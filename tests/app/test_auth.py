"""`artsim serve` beyond the loopback: no start without a token; with one, every route (the API, the page, its
static files, /docs) answers 401 to a request without it, whether by a Bearer header or the login cookie."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from artsim.app.auth import TOKEN_ENV, TokenGate, is_loopback
from artsim.app.cli import main
from tests.support.helpers import random_painting

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
TOKEN = "s3cret-token-for-the-tests-0123456789"
GATED = ["/", "/static/app.js", "/static/style.css", "/health", "/docs", "/docs-assets/swagger-ui-bundle.js", "/redoc",
         "/openapi.json", "/original/painting_0.png"]


@pytest.fixture(scope="module")
def serve_args(model_dir, paintings) -> list[str]:
    return ["serve", "--model", str(model_dir), "--originals", str(paintings)]


def png_of(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def served_app(monkeypatch, tmp_path: Path, args: list[str]):
    """The app `artsim serve ARGS` would run (uvicorn.run caught), the status and stderr of the command."""
    monkeypatch.setenv("ARTSIM_CACHE", str(tmp_path / "cache"))
    started = []
    monkeypatch.setattr("uvicorn.run", lambda app, **_: started.append(app))
    status = main(args)
    return (started[0] if started else None), status


@pytest.fixture(scope="module")
def gated_client(serve_args, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(TOKEN_ENV, TOKEN)
        app, status = served_app(patch, tmp_path_factory.mktemp("run"), [*serve_args, "--host", "0.0.0.0"])
    assert status == 0 and isinstance(app, TokenGate)
    return TestClient(app)


def test_the_loopback_default_needs_no_token(serve_args, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    app, status = served_app(monkeypatch, tmp_path, serve_args)
    assert status == 0 and not isinstance(app, TokenGate)
    client = TestClient(app)
    assert client.get("/health").status_code == 200 and client.get("/").status_code == 200
    assert "token" not in capsys.readouterr().err


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "artsim.example.org"])
def test_beyond_the_loopback_it_refuses_to_start_without_a_token(serve_args, monkeypatch, tmp_path, capsys, host):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    app, status = served_app(monkeypatch, tmp_path, [*serve_args, "--host", host])
    err = capsys.readouterr().err
    assert status == 2 and app is None
    assert len(err.strip().splitlines()) == 1 and "--token" in err and TOKEN_ENV in err


def test_a_short_token_is_refused_without_showing_it(serve_args, monkeypatch, tmp_path, capsys):
    app, status = served_app(monkeypatch, tmp_path, [*serve_args, "--host", "0.0.0.0", "--token", "hunter2"])
    err = capsys.readouterr().err
    assert status == 2 and app is None and "hunter2" not in err and "at least 16" in err


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True),
                                            ("localhost", True), ("0.0.0.0", False), ("::", False),
                                            ("10.0.0.1", False), ("localhost.example.org", False)])
def test_which_hosts_are_this_machine_only(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("path", GATED)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token-of-the-same-kind-000000"},
                                     {"Authorization": f"Basic {TOKEN}"}, {"Authorization": f"Bearer {TOKEN}x"},
                                     {"Cookie": f"artsim_session={TOKEN}"}],
                         ids=["missing", "wrong", "other-scheme", "longer", "token-as-cookie"])
def test_without_the_token_every_route_is_401(gated_client, path, headers):
    response = gated_client.get(path, headers=headers)
    assert response.status_code == 401
    assert TOKEN not in response.text and TOKEN not in str(response.headers)


def test_an_api_401_says_how_to_authenticate_and_a_post_is_refused_before_its_body(gated_client):
    image = ("q.png", b"\x89PNG" + b"\0" * 1000, "image/png")
    response = gated_client.post("/search", files={"image": image})
    assert response.status_code == 401 and response.json()["error"] == "unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_the_bearer_token_opens_the_api_and_the_page(gated_client):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for path in GATED:
        assert gated_client.get(path, headers=headers).status_code == 200, path
    query = {"image": ("q.png", png_of(random_painting(5)), "image/png")}
    found = gated_client.post("/search", headers=headers, files=query)
    assert found.status_code == 200 and found.json()["results"]


def test_the_page_without_the_token_is_the_login_form_and_the_cookie_opens_everything(serve_args, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(TOKEN_ENV, TOKEN)
        app, _ = served_app(patch, tmp_path_factory.mktemp("run"), [*serve_args, "--host", "0.0.0.0"])
    browser = TestClient(app, follow_redirects=False)
    page = browser.get("/")
    assert page.status_code == 401 and 'action="/login"' in page.text and "script" not in page.text
    wrong = browser.post("/login", data={"token": "wrong-token-of-the-same-kind-000000"})
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers and browser.get("/health").status_code == 401
    signed_in = browser.post("/login", data={"token": TOKEN})
    cookie = signed_in.headers["set-cookie"]
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/"
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    for path in GATED:
        assert browser.get(path).status_code == 200, path
    query = {"image": ("q.png", png_of(random_painting(6)), "image/png")}
    assert browser.post("/search", files=query).status_code == 200


def test_a_login_body_over_its_limit_is_refused(gated_client):
    assert gated_client.post("/login", data={"token": TOKEN + "x" * 10_000}).status_code == 401
