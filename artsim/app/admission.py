"""What `artsim serve` lets in: at most so many requests computing and waiting (Admission), at most so many
bytes per request body (BodyLimit); every refusal a JSON error `{"error": code, "detail": why}` (ApiError)."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi.responses import JSONResponse

T = TypeVar("T")


class ApiError(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def error_response(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


class Admission:
    """At most `concurrent` requests compute at once and `queue` more wait; beyond, 503 at once.

    Thread primitives, not asyncio ones: the work runs in Starlette's thread pool, and a test
    client may drive the app from several event loops.
    """

    def __init__(self, concurrent: int, queue: int) -> None:
        self._slots = threading.BoundedSemaphore(concurrent)
        self._limit = concurrent + queue
        self._admitted = 0
        self._lock = threading.Lock()

    def admit(self) -> None:
        with self._lock:
            if self._admitted >= self._limit:
                raise ApiError(
                    503, "busy", f"{self._admitted} requests in progress or waiting (the limit): retry shortly"
                )
            self._admitted += 1

    @property
    def admitted(self) -> int:
        return self._admitted

    def leave(self) -> None:
        with self._lock:
            self._admitted -= 1

    def run(self, work: Callable[[], T]) -> T:
        with self._slots:
            return work()


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` is refused from its Content-Length, or as
    soon as the bytes streamed in pass the limit (a missing or lying Content-Length)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            response = error_response(413, "request_too_large", f"Content-Length {declared.decode('latin-1')[:20]} "
                                      f"is over the limit of {self.max_bytes} bytes")
            return await response(scope, receive, send)
        received = 0

        async def capped_receive() -> dict:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise ApiError(
                    413, "request_too_large", f"the request body is over the limit of {self.max_bytes} bytes"
                )
            return message

        await self.app(scope, capped_receive, send)
