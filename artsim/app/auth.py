"""The token of `artsim serve` beyond this machine: who may use the API and the page.

On the loopback (127.0.0.1, ::1, localhost: the default) no token is needed. Bound to any other address, the
server refuses to start without one (`--token`, or the environment variable ARTSIM_TOKEN, which keeps it out
of the process list and the shell history). Every request then carries it, or is answered 401 before its body
is read: the API in an `Authorization: Bearer TOKEN` header, a browser in a cookie set by a small login form
(HttpOnly: no script reads it; SameSite=Strict: no other site's page sends it). The page, its scripts and
styles, /docs and /health are behind it too. The cookie holds a value derived from the token, not the token,
and every comparison is in constant time. The token is never logged nor echoed.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from artsim.core.errors import UserError

TOKEN_ENV = "ARTSIM_TOKEN"
MIN_TOKEN_LENGTH = 16
COOKIE_NAME = "artsim_session"
LOGIN_PATH = "/login"
# A login form holds one short field: its body is read up to this, never more.
MAX_LOGIN_BYTES = 4096
# The form loads nothing (the page's own style sheet is behind the token too) and posts only here.
LOGIN_POLICY = "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>artsim: sign in</title></head>
<body><main><h1>artsim</h1>{message}
<form method="post" action="/login">
<label>Token <input type="password" name="token" autocomplete="current-password" required autofocus></label>
<button type="submit">Sign in</button></form></main></body></html>
"""


def is_loopback(host: str) -> bool:
    """Whether `host` (a --host value) listens on this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a name: it may resolve to anything
        return False


def serve_token(host: str, given: str | None) -> str | None:
    """The token the server demands (from --token, else ARTSIM_TOKEN), or None on the loopback without one.
    UserError (before anything is loaded) for another address without a token, or with a guessable one."""
    token = given if given is not None else os.environ.get(TOKEN_ENV) or None
    if token is None and not is_loopback(host):
        raise UserError(f"--host {host} is reachable from other machines: give a token with --token or the "
                        f"environment variable {TOKEN_ENV} (e.g. from `python -c 'import secrets; "
                        f"print(secrets.token_urlsafe())'`), or listen on 127.0.0.1")
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise UserError(f"the token (--token or {TOKEN_ENV}) must be at least {MIN_TOKEN_LENGTH} characters "
                        f"(its length is not shown)")
    return token


class TokenGate:
    """ASGI middleware: every HTTP request carries the token (a Bearer header or the login cookie), else 401;
    POST /login checks a form's token and sets the cookie; GET /login (and a refused page) shows the form."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self._token = token.encode()
        self._session = hmac.new(self._token, b"artsim serve session cookie", hashlib.sha256).hexdigest().encode()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] not in ("http", "websocket"):  # lifespan
            return await self.app(scope, receive, send)
        if scope["type"] == "http" and scope["path"] == LOGIN_PATH:
            return await self._login(scope, receive, send)
        if self._carries_token(dict(scope["headers"])):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        if scope["method"] == "GET" and scope["path"] == "/":
            return await _send(send, 401, *_login_page(""))
        await _send(send, 401, "application/json", json.dumps({
            "error": "unauthorized", "detail": "a token is needed: an `Authorization: Bearer TOKEN` header, "
                                               f"or sign in at {LOGIN_PATH}"}).encode(),
                    [(b"www-authenticate", b'Bearer realm="artsim"')])

    def _carries_token(self, headers: dict[bytes, bytes]) -> bool:
        scheme, _, credentials = headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self._token):
            return True
        cookie = _cookie(headers.get(b"cookie", b""))
        return cookie is not None and hmac.compare_digest(cookie, self._session)

    async def _login(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["method"] != "POST":
            return await _send(send, 200, *_login_page(""))
        body = await _read_body(receive, MAX_LOGIN_BYTES)
        # A urlencoded form is ASCII; its %-escapes are UTF-8, as a browser sends them.
        given = parse_qs(body.decode("ascii", "replace")).get("token", [""])[0].encode() if body is not None else b""
        if not hmac.compare_digest(given, self._token):
            return await _send(send, 401, *_login_page("<p role=\"alert\">Wrong token.</p>"))
        cookie = f"{COOKIE_NAME}={self._session.decode()}; Path=/; HttpOnly; SameSite=Strict"
        await _send(send, 303, "text/plain; charset=utf-8", b"signed in", [(b"location", b"/"),
                                                                           (b"set-cookie", cookie.encode())])


def with_token(app: Any, token: str | None) -> Any:
    """`app` behind the token, or as it is without one (the loopback default)."""
    return app if token is None else TokenGate(app, token)


def _cookie(header: bytes) -> bytes | None:
    try:
        morsel = SimpleCookie(header.decode("latin-1")).get(COOKIE_NAME)
    except Exception:  # noqa: BLE001 - a malformed Cookie header is no cookie, never a 500
        return None
    return None if morsel is None else morsel.value.encode("latin-1", "replace")


async def _read_body(receive: Callable, limit: int) -> bytes | None:
    """The request body, or None once it passes `limit` bytes (the rest is left unread)."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if not message.get("more_body", False):
            return body


def _login_page(message: str) -> tuple[str, bytes, list[tuple[bytes, bytes]]]:
    return ("text/html; charset=utf-8", LOGIN_PAGE.format(message=message).encode(),
            [(b"content-security-policy", LOGIN_POLICY.encode())])


async def _send(send: Callable, status: int, media_type: str, body: bytes,
                headers: list[tuple[bytes, bytes]] = ()) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", media_type.encode()), (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff"), *headers]})
    await send({"type": "http.response.body", "body": body})
