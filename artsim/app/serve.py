"""The HTTP API and page of `artsim serve` (FastAPI): `create_app(state, limits)`.

Every upload is untrusted. Before anything is decoded: a request is admitted or refused (503)
by the concurrency limit, so waiting bodies cannot pile up in memory; its Content-Length and
then the bytes actually streamed are capped (413); each image's size is capped (413), then its
header's pixel count (413, before decoding). An image that is not one is a 415, a damaged one
a 400; every error is JSON `{"error": code, "detail": why}`, never a traceback.
"""
from __future__ import annotations

import io
import threading
import unicodedata
from http import HTTPStatus
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.datastructures import FormData, UploadFile

from artsim.app.api import LoadedImage
from artsim.app.difference import difference_maps, entry_label, write_comparison_plot
from artsim.app.service import MAX_TOP_K, ServiceLimits, ServiceState
from artsim.core.images import ImageFile, ImageRejected, load_rgb, read_regular_file

STATIC = Path(str(files("artsim.app") / "static"))
# Entry ids are a manifest's ids, or paths relative to a folder (artsim.index.collection).
MAX_ID_LENGTH = 1024
# Which ImageRejected reasons are the client's "too large" or "not an image"; any other is a 400.
REJECTION_STATUS = {"too_many_pixels": 413, "file_too_large": 413, "not_an_image": 415}
# The page loads nothing from elsewhere, and runs no inline script.
PAGE_POLICY = "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
T = TypeVar("T")


class ApiError(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def error_response(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


# --- limits ----------------------------------------------------------------------------------

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
                raise ApiError(503, "busy", f"{self._admitted} requests in progress or waiting (the limit): retry shortly")
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
                raise ApiError(413, "request_too_large", f"the request body is over the limit of {self.max_bytes} bytes")
            return message

        await self.app(scope, capped_receive, send)


# --- reading a request -----------------------------------------------------------------------

def safe_name(name: str | None, fallback: str) -> str:
    """An uploaded file's name, for display only: its last part, printable, at most 100 characters."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(c for c in base if unicodedata.category(c)[0] != "C")[:100]
    return cleaned or fallback


async def upload_bytes(form: FormData, key: str, limits: ServiceLimits) -> tuple[str, bytes]:
    value = form.get(key)
    if not isinstance(value, UploadFile):
        raise ApiError(400, "missing_field", f"multipart field {key!r} must be an image file (multipart/form-data)")
    if value.size is not None and value.size > limits.max_image_bytes:
        raise ApiError(413, "image_too_large", f"{key}: {value.size} bytes, over the limit of {limits.max_image_bytes}")
    data = await value.read(limits.max_image_bytes + 1)
    if len(data) > limits.max_image_bytes:
        raise ApiError(413, "image_too_large", f"{key}: over the limit of {limits.max_image_bytes} bytes")
    return safe_name(value.filename, key), data


def decode(name: str, data: bytes, limits: ServiceLimits) -> LoadedImage:
    try:
        return LoadedImage(name, load_rgb(data, max_pixels=limits.max_pixels))
    except ImageRejected as exc:
        # load_rgb names a source given as bytes "<bytes>": the upload's own name says more.
        detail = f" ({exc.detail})" if exc.detail and exc.detail != "<bytes>" else ""
        raise ApiError(REJECTION_STATUS.get(exc.reason, 400), exc.reason, f"{name}: {exc.reason.replace('_', ' ')}{detail}") from None


def original_file(state: ServiceState, image_id: str) -> ImageFile:
    """An original by the index's entry id: the id is only ever a key of the index, never part of a path
    (where the original lies comes from the index)."""
    if len(image_id) > MAX_ID_LENGTH or any(unicodedata.category(c)[0] == "C" for c in image_id):
        raise ApiError(400, "bad_id", f"an original's id is at most {MAX_ID_LENGTH} printable characters")
    try:
        image = state.original(image_id)
    except ImageRejected as exc:
        raise ApiError(404, "unreadable_original", f"the original cannot be read ({exc})") from None
    if image is None:
        raise ApiError(404, "unknown_original", f"no original {image_id[:100]!r} in the index")
    return image


def original_bytes(image: ImageFile, limits: ServiceLimits) -> bytes:
    try:
        # A loose file is opened as ingest opens one: regular files only (a FIFO cannot hang the server), capped.
        return read_regular_file(image, limits.max_image_bytes) if isinstance(image, Path) else image.read_bytes()
    except (ImageRejected, OSError) as exc:
        raise ApiError(404, "unreadable_original", f"the original cannot be read ({exc})") from None


def form_int(form: FormData, key: str, default: int, low: int, high: int) -> int:
    text = form.get(key, str(default))
    if not isinstance(text, str) or not text.strip().isdigit() or not low <= int(text) <= high:
        raise ApiError(400, "bad_field", f"{key} must be a whole number from {low} to {high}")
    return int(text)


# --- the app ---------------------------------------------------------------------------------

def multipart_body(*fields: str) -> dict:
    """OpenAPI for a multipart body read by hand (so that the size limits come before any parsing)."""
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "properties": {name: {"type": "string", "format": "binary"} if kind == "file" else {"type": "string"}
                                         for name, kind in (f.split(":") for f in fields)}}}}}}


def create_app(state: ServiceState, limits: ServiceLimits = ServiceLimits()) -> FastAPI:
    app = FastAPI(title="artsim", description="Was this image made from that painting? The model's and the "
                  "descriptor score of a pair, and the originals an image most resembles.")
    admission = Admission(limits.max_concurrent, limits.max_queue)
    app.add_middleware(BodyLimit, max_bytes=limits.max_request_bytes)
    app.add_exception_handler(ApiError, lambda request, exc: error_response(exc.status, exc.code, exc.detail))
    # Starlette's own (unknown route, a malformed multipart body) in the same shape.
    app.add_exception_handler(HTTPException, lambda request, exc: error_response(
        exc.status_code, HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_"), str(exc.detail)))

    async def admitted(request: Request, work: Callable[[FormData], Callable[[], T]]) -> T:
        """Admit, read the form (capped), then compute in a worker thread under the concurrency limit."""
        admission.admit()
        try:
            async with request.form(max_files=3, max_fields=8) as form:
                job = await work(form)
                return await run_in_threadpool(admission.run, job)
        finally:
            admission.leave()

    async def pair(form: FormData) -> Callable[[], tuple[LoadedImage, LoadedImage]]:
        """Read both fields now (capped); decode later, in the worker thread."""
        first = await upload_bytes(form, "a", limits)
        original_id = form.get("b_original")
        if isinstance(original_id, str):
            image = original_file(state, original_id)
            name = entry_label(state.opened.index.entries, state.row_of_id.get(original_id),  # its title, for the plot
                               safe_name(getattr(image, "name", ""), original_id))

            def second() -> LoadedImage:  # read in the worker too: disk I/O
                return decode(name, original_bytes(image, limits), limits)
        else:
            uploaded = await upload_bytes(form, "b", limits)

            def second() -> LoadedImage:
                return decode(*uploaded, limits)
        return lambda: (decode(*first, limits), second())

    def plot_png(a: LoadedImage, b: LoadedImage, payload: dict) -> Response:
        buffer = io.BytesIO()
        write_comparison_plot(a.image, b.image, (a.name, b.name), payload,
                              difference_maps(a.image, b.image, state.scorer.descriptor.describe), buffer)
        return Response(buffer.getvalue(), media_type="image/png")

    async def compare_or_plot(request: Request, plot: bool) -> Response:
        async def work(form: FormData) -> Callable[[], Response]:
            images = await pair(form)

            def job() -> Response:
                a, b = images()
                payload = state.compare(a, b, (a.name, b.name))
                return plot_png(a, b, payload) if plot else JSONResponse(payload)
            return job
        return await admitted(request, work)

    @app.post("/compare", openapi_extra=multipart_body("a:file", "b:file", "b_original:text"),
              summary="Both scores of a pair (b, or b_original: an original's id); ?plot=1 for the difference plot PNG")
    async def compare(request: Request, plot: bool = False) -> Response:
        return await compare_or_plot(request, plot)

    @app.post("/plot", openapi_extra=multipart_body("a:file", "b:file", "b_original:text"),
              summary="The difference plot PNG of a pair: both images, the scores, where they differ")
    async def plot(request: Request) -> Response:
        return await compare_or_plot(request, True)

    @app.post("/search", openapi_extra=multipart_body("image:file", "top_k:text", "by:text"),
              summary="The originals most similar to an image, best first")
    async def search(request: Request) -> Response:
        async def work(form: FormData) -> Callable[[], Response]:
            query = await upload_bytes(form, "image", limits)
            top_k = form_int(form, "top_k", 5, 1, MAX_TOP_K)
            by = form.get("by", state.default_by)
            if by not in state.searches:
                raise ApiError(400, "bad_field", f"by must be one of {', '.join(sorted(state.searches))}")
            return lambda: JSONResponse(state.search(decode(*query, limits), top_k, str(by)))
        return await admitted(request, work)

    @app.get("/original/{image_id:path}", summary="An original of the index, by its entry id, as stored", response_class=Response)
    def original(image_id: str) -> Response:
        data = original_bytes(original_file(state, image_id), limits)
        try:
            media_type = Image.MIME.get(Image.open(io.BytesIO(data)).format or "", "application/octet-stream")
        except Exception:  # noqa: BLE001 - a damaged original is still served as bytes; the page says it did not load
            media_type = "application/octet-stream"
        return Response(data, media_type=media_type, headers={"X-Content-Type-Options": "nosniff"})

    @app.get("/health", summary="Model fingerprint, index size and model, and whether their files changed since loading")
    def health() -> dict[str, Any]:
        return {**state.health(), "requests_admitted": admission.admitted, "limits": {"max_image_bytes": limits.max_image_bytes, "max_pixels": limits.max_pixels,
                                             "max_concurrent": limits.max_concurrent, "max_queue": limits.max_queue}}

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": PAGE_POLICY})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
