"""The FastAPI application: routes parse HTTP into SearchRequests and ids, the engine answers.

Errors are JSON `{"error": "..."}` with the status a client can act on: 400 a bad query or
upload, 401 a missing token, 404 an unknown id or a file gone from disk, 409 a file that is no
longer the one indexed, 413 an oversized upload, 503 a store that cannot answer yet.
"""

from __future__ import annotations

import mimetypes
import os
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from clipsearch.api.engine import ApiEngine, UnknownImageError, UploadTooLargeError
from clipsearch.api.params import build_request, openapi_parameters
from clipsearch.api.security import BodyTooLarge, Guard
from clipsearch.errors import (
    ClipsearchError,
    EmptyStoreError,
    ModelError,
    ModelMismatchError,
    OriginalChangedError,
    OriginalMissingError,
    QueryError,
    StoreError,
)
from clipsearch.search import SearchRequest, SearchResult

# Most specific first: OriginalMissingError is a StoreError, but a 404, not a 503.
STATUS_FOR = (
    (UnknownImageError, 404),
    (OriginalMissingError, 404),
    (OriginalChangedError, 409),
    (UploadTooLargeError, 413),
    (BodyTooLarge, 413),
    (QueryError, 400),
    (EmptyStoreError, 503),
    (ModelMismatchError, 503),
    (ModelError, 503),
    (StoreError, 503),
    (ClipsearchError, 400),
)
CHUNK = 256 * 1024
UPLOAD_FIELD = "image"


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _status(exc: Exception) -> int:
    return next(code for kind, code in STATUS_FOR if isinstance(exc, kind))


def create_app(engine: ApiEngine, token: str | None = None, allowed_hosts: tuple[str, ...] = ()) -> Any:
    app = FastAPI(
        title="clipsearch",
        summary="Semantic image search over one clipsearch store",
        description="Search a photo collection by text or by example image. Send `Authorization: Bearer TOKEN` "
        "when the server was started with a token.",
        version="1",
    )
    _add_error_handlers(app)
    _add_search_routes(app, engine)
    _add_image_routes(app, engine)

    @app.get("/api/status", summary="The store's facts (as `clipsearch status --json`)")
    async def status() -> dict:
        return await run_in_threadpool(engine.status)

    @app.get("/healthz", summary="Liveness, whether the model and index are loaded, and text encoding's sharing")
    async def healthz() -> dict:
        return {"ok": True, "loaded": engine.loaded, **engine.encoding_counts()}

    # Outermost: nothing runs before the Host, token and size checks.
    return Guard(app, token, allowed_hosts, engine.limits.max_upload_bytes + 64 * 1024)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ClipsearchError)
    async def clipsearch_error(_request: Request, exc: ClipsearchError) -> JSONResponse:
        return error(_status(exc), str(exc))

    @app.exception_handler(BodyTooLarge)
    async def body_too_large(_request: Request, _exc: BodyTooLarge) -> JSONResponse:
        return error(413, "the request body is over the upload limit")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = "no such endpoint; see /docs"
        return error(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error(400, f"bad request: {where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(Exception)
    async def internal(_request: Request, exc: Exception) -> JSONResponse:
        return error(500, f"internal error ({type(exc).__name__}); the server log has the details")


def _result_json(engine: ApiEngine, request: SearchRequest, result: SearchResult) -> dict:
    """`clipsearch query --json`'s object (terms, results, notes), plus paging, timings and warnings."""
    return {
        **result.to_dict(),
        "k": request.k,
        "offset": request.offset,
        "timings": {name: round(ms, 3) for name, ms in result.timings.items()},
        "warnings": engine.warnings(),
    }


async def _answer(engine: ApiEngine, request: SearchRequest) -> Response:
    result = await run_in_threadpool(engine.search, request)
    # A response, not a dict: FastAPI would validate the dict against the route's return type
    # and encode it again through pydantic (jsonable_encoder alone took 0.18 ms for 10 hits).
    return JSONResponse(_result_json(engine, request, result))


def _add_search_routes(app: FastAPI, engine: ApiEngine) -> None:
    @app.get("/api/search", summary="Search by text (and filters)", openapi_extra={"parameters": openapi_parameters()})
    async def search_get(request: Request) -> Response:
        return await _answer(engine, build_request(request.query_params.multi_items()))

    body_doc = {
        "requestBody": {
            "content": {
                "application/json": {
                    "schema": {"type": "object", "description": "the same names as GET /api/search's parameters"}
                },
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            UPLOAD_FIELD: {"type": "string", "format": "binary", "description": "an example image"},
                            "q": {"type": "string"},
                        },
                    }
                },
            }
        },
    }

    @app.post(
        "/api/search", summary="Search by text and/or an example image (JSON or multipart)", openapi_extra=body_doc
    )
    async def search_post(request: Request) -> Response:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "application/json":
            try:
                body = await request.json()
            except ValueError as exc:
                raise QueryError("the body is not valid JSON") from exc
            if not isinstance(body, dict):
                raise QueryError("the JSON body must be an object of search parameters")
            return await _answer(engine, build_request(body.items()))
        if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
            return await _answer(engine, await _form_request(engine, request))
        raise QueryError("send the search as JSON (Content-Type: application/json) or multipart/form-data")

    @app.get(
        "/api/images/{image_id}/similar",
        summary="Images like an indexed one (its own vector)",
        openapi_extra={"parameters": [p for p in openapi_parameters() if p["name"] not in ("q", "text")]},
    )
    async def similar(image_id: str, request: Request) -> Response:
        found = await run_in_threadpool(engine.original, _id(image_id))
        return await _answer(engine, build_request(request.query_params.multi_items(), image_id=found.id))


async def _form_request(engine: ApiEngine, request: Request) -> SearchRequest:
    form = await request.form(max_files=1, max_fields=100)
    values, image = [], None
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            if name != UPLOAD_FIELD:
                raise QueryError(f"unexpected file field {name!r}; send the example image as {UPLOAD_FIELD!r}")
            data = await value.read()
            image = await run_in_threadpool(engine.query_image, data, value.filename or UPLOAD_FIELD)
        else:
            values.append((name, value))
    return build_request(values, image=image) if image is not None else build_request(values)


def _id(raw: str) -> int:
    # Ids are catalog keys; anything else (a path, "../x") is simply not one.
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise UnknownImageError(f"no indexed image has id {raw!r}")
    return int(raw)


def _add_image_routes(app: FastAPI, engine: ApiEngine) -> None:
    @app.get(
        "/api/images/{image_id}",
        summary="The original file of an indexed image",
        responses={200: {"content": {"image/*": {}}}},
        response_class=Response,
    )
    async def original(image_id: str) -> Response:
        found, fh, size = await run_in_threadpool(engine.open_original, _id(image_id))
        name = os.path.basename(found.path)
        headers = {
            "content-length": str(size),
            "content-disposition": f"inline; filename*=UTF-8''{quote(name, safe='')}",
            "x-content-type-options": "nosniff",
            "content-security-policy": "default-src 'none'; sandbox",
        }
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return StreamingResponse(_chunks(fh), media_type=kind, headers=headers)

    @app.get(
        "/api/images/{image_id}/thumbnail",
        summary="A JPEG preview (longer side 320 px)",
        responses={200: {"content": {"image/jpeg": {}}}},
        response_class=Response,
    )
    async def thumbnail(image_id: str) -> Response:
        data = await run_in_threadpool(engine.thumbnail, _id(image_id))
        return Response(
            data,
            media_type="image/jpeg",
            headers={"x-content-type-options": "nosniff", "cache-control": "max-age=3600"},
        )


def _chunks(fh):
    with fh:
        while chunk := fh.read(CHUNK):
            yield chunk
