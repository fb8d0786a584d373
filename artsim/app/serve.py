"""The HTTP API and page of `artsim serve` (FastAPI): `create_app(state, limits)`.

Every upload is untrusted. Before anything is decoded: a request is admitted or refused (503)
by the concurrency limit, so waiting bodies cannot pile up in memory; its Content-Length and
then the bytes actually streamed are capped (413); each image's size is capped (413), then its
header's pixel count (413, before decoding). An image that is not one is a 415, a damaged one
a 400; every error is JSON `{"error": code, "detail": why}`, never a traceback.
"""
from __future__ import annotations

import io
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException

from artsim.app.admission import Admission, ApiError, BodyLimit, error_response
from artsim.app.api import LoadedImage
from artsim.app.difference import difference_maps, entry_label, write_comparison_plot
from artsim.app.limits import ServiceLimits
from artsim.app.service import MAX_TOP_K, ServiceState
from artsim.core.images import ImageFile, ImageRejected, load_rgb, read_regular_file
from artsim.index import DEFAULT_TOP_K, RANKING_NAMES

STATIC = Path(str(files("artsim.app") / "static"))
# /docs and /redoc load Swagger UI and ReDoc from here, not from a CDN: the files of a pinned package (fastapi-offline).
DOCS_ASSETS = Path(str(files("fastapi_offline") / "static"))
DOCS_ASSETS_URL = "/docs-assets"
# Entry ids are a manifest's ids, or paths relative to a folder (artsim.index.collection).
MAX_ID_LENGTH = 1024
# Which ImageRejected reasons are the client's "too large" or "not an image"; any other is a 400.
REJECTION_STATUS = {"too_many_pixels": 413, "file_too_large": 413, "not_an_image": 415}
# The page loads nothing from elsewhere, and runs no inline script.
LIMITS_SHOWN = ("max_image_bytes", "max_pixels", "max_concurrent", "max_queue")  # by GET /health
PAGE_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


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
        raise ApiError(
            REJECTION_STATUS.get(exc.reason, 400), exc.reason, f"{name}: {exc.reason.replace('_', ' ')}{detail}"
        ) from None


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


# --- the routes ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Served:
    """What every route reads: the state, the limits and the admission (on app.state.served)."""

    state: ServiceState
    limits: ServiceLimits
    admission: Admission


@dataclass(frozen=True)
class PairRequest:
    """A pair as read from the form (capped): the first upload, and the second upload or an original."""

    first: tuple[str, bytes]
    second: tuple[str, bytes] | None = None
    original: tuple[str, ImageFile] | None = None

    def decoded(self, limits: ServiceLimits) -> tuple[LoadedImage, LoadedImage]:
        """Both images decoded (in the worker thread: decoding and reading an original are the heavy part)."""
        second = self.second if self.original is None else (self.original[0], original_bytes(self.original[1], limits))
        return decode(*self.first, limits), decode(*second, limits)


async def admitted(request: Request, read: Callable[[Served, FormData], Awaitable[Callable[[], Response]]]) -> Response:
    """Admit, read the form (capped) into a job, then run the job in a worker thread under the concurrency limit."""
    served: Served = request.app.state.served
    served.admission.admit()
    try:
        async with request.form(max_files=3, max_fields=8) as form:
            job = await read(served, form)
            return await run_in_threadpool(served.admission.run, job)
    finally:
        served.admission.leave()


async def read_pair(served: Served, form: FormData) -> PairRequest:
    """Both fields read now (capped); decoded later, in the worker thread."""
    first = await upload_bytes(form, "a", served.limits)
    original_id = form.get("b_original")
    if isinstance(original_id, str):
        image = original_file(served.state, original_id)
        name = entry_label(served.state.opened.index.entries, served.state.row_of_id.get(original_id),  # its title
                           safe_name(getattr(image, "name", ""), original_id))
        return PairRequest(first, original=(name, image))
    return PairRequest(first, await upload_bytes(form, "b", served.limits))


async def read_compare(served: Served, form: FormData, plot: bool) -> Callable[[], Response]:
    return partial(answer_compare, served, await read_pair(served, form), plot)


def answer_compare(served: Served, pair: PairRequest, plot: bool) -> Response:
    a, b = pair.decoded(served.limits)
    payload = served.state.compare(a, b)
    if not plot:
        return JSONResponse(payload)
    buffer = io.BytesIO()
    write_comparison_plot(a.image, b.image, (a.name, b.name), payload,
                          difference_maps(a.image, b.image, served.state.scorer.descriptor.describe), buffer)
    return Response(buffer.getvalue(), media_type="image/png")


async def compare(request: Request, plot: bool = False) -> Response:
    return await admitted(request, partial(read_compare, plot=plot))


async def plot(request: Request) -> Response:
    return await compare(request, True)


async def read_search(served: Served, form: FormData) -> Callable[[], Response]:
    query = await upload_bytes(form, "image", served.limits)
    top_k = form_int(form, "top_k", DEFAULT_TOP_K, 1, MAX_TOP_K)
    ranking = form.get("by", served.state.default_ranking)
    if ranking not in RANKING_NAMES:
        raise ApiError(400, "bad_field", f"by must be one of {', '.join(sorted(RANKING_NAMES))}")
    return partial(answer_search, served, query, top_k, str(ranking))


def answer_search(served: Served, query: tuple[str, bytes], top_k: int, ranking: str) -> Response:
    return JSONResponse(served.state.search(decode(*query, served.limits), top_k, ranking))


async def search(request: Request) -> Response:
    return await admitted(request, read_search)


def original(request: Request, image_id: str) -> Response:
    served: Served = request.app.state.served
    data = original_bytes(original_file(served.state, image_id), served.limits)
    try:
        media_type = Image.MIME.get(Image.open(io.BytesIO(data)).format or "", "application/octet-stream")
    except Exception:  # noqa: BLE001 - a damaged original is still served as bytes; the page says it did not load
        media_type = "application/octet-stream"
    return Response(data, media_type=media_type, headers={"X-Content-Type-Options": "nosniff"})


def health(request: Request) -> dict[str, Any]:
    served: Served = request.app.state.served
    return {**served.state.health(), "requests_admitted": served.admission.admitted,
            "limits": {name: getattr(served.limits, name) for name in LIMITS_SHOWN}}


def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": PAGE_POLICY})


def swagger_page(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url=request.app.openapi_url, title="artsim API",
                               swagger_js_url=f"{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
                               swagger_css_url=f"{DOCS_ASSETS_URL}/swagger-ui.css",
                               swagger_favicon_url=f"{DOCS_ASSETS_URL}/favicon.png")


def redoc_page(request: Request) -> HTMLResponse:
    return get_redoc_html(openapi_url=request.app.openapi_url, title="artsim API", with_google_fonts=False,
                          redoc_js_url=f"{DOCS_ASSETS_URL}/redoc.standalone.js",
                          redoc_favicon_url=f"{DOCS_ASSETS_URL}/favicon.png")


def api_error(request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.code, exc.detail)


def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Starlette's own errors (unknown route, a malformed multipart body) in the same shape."""
    return error_response(
        exc.status_code, HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_"), str(exc.detail)
    )


# --- the app ---------------------------------------------------------------------------------

def multipart_body(*fields: str) -> dict:
    """OpenAPI for a multipart body read by hand (so that the size limits come before any parsing)."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            name: {"type": "string", "format": "binary"} if kind == "file" else {"type": "string"}
                            for name, kind in (f.split(":") for f in fields)
                        },
                    }
                }
            },
        }
    }


PAIR_FIELDS = multipart_body("a:file", "b:file", "b_original:text")
# path, handler, method, summary, OpenAPI extra
ROUTES = [
    (
        "/compare",
        compare,
        "POST",
        "Both scores of a pair (b, or b_original: an original's id); ?plot=1 for the difference plot PNG",
        PAIR_FIELDS,
    ),
    (
        "/plot",
        plot,
        "POST",
        "The difference plot PNG of a pair: both images, the scores, where they differ",
        PAIR_FIELDS,
    ),
    (
        "/search",
        search,
        "POST",
        "The originals most similar to an image, best first",
        multipart_body("image:file", "top_k:text", "by:text"),
    ),
    ("/original/{image_id:path}", original, "GET", "An original of the index, by its entry id, as stored", None),
    (
        "/health",
        health,
        "GET",
        "Model fingerprint, index size and model, and whether their files changed since loading",
        None,
    ),
]


def create_app(state: ServiceState, limits: ServiceLimits = ServiceLimits()) -> FastAPI:
    app = FastAPI(title="artsim", docs_url=None, redoc_url=None,  # served below, from local files
                  description="Was this image made from that painting? The model's and the descriptor score of a pair, "
                  "and the originals an image most resembles.")
    app.state.served = Served(state, limits, Admission(limits.max_concurrent, limits.max_queue))
    app.add_middleware(BodyLimit, max_bytes=limits.max_request_bytes)
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(HTTPException, http_error)
    for path, handler, method, summary, extra in ROUTES:
        app.add_api_route(path, handler, methods=[method], summary=summary, openapi_extra=extra,
                          response_class=Response if handler is original else JSONResponse)
    app.add_api_route("/", page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/docs", swagger_page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/redoc", redoc_page, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
    return app
