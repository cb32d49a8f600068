"""The routes the front door adds: ``/favicon.ico``, ``POST /access`` (a key for a cookie), and Starlette's own
errors in the project's error envelope."""

from __future__ import annotations

import hashlib
import hmac
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from avatarchat.errors import error_body
from avatarchat.settings import Settings

FAVICON = Path(str(files("avatarchat").joinpath("web/favicon.svg")))
COOKIE = "avatarchat_access"


def docs_urls(settings: Settings) -> dict[str, str | None]:
    """``FastAPI(**docs_urls(settings))``: the OpenAPI pages exist only when ``docs_enabled``."""
    if settings.docs_enabled:
        return {"docs_url": "/docs", "redoc_url": None, "openapi_url": "/openapi.json"}
    return {"docs_url": None, "redoc_url": None, "openapi_url": None}


def cookie_token(key: str) -> str:
    """What the access cookie holds for ``key``: derived from it, so the key itself is not stored by the browser."""
    return hmac.new(key.encode(), b"avatarchat-access-cookie", hashlib.sha256).hexdigest()


class AccessRequest(BaseModel):
    key: str


def security_router(settings: Settings) -> APIRouter:
    """``/favicon.ico``, and ``POST /access``, which trades a key for a cookie the page's media and socket carry."""
    router = APIRouter()
    tokens = {cookie_token(k.get_secret_value()): k.get_secret_value() for k in settings.access_keys}

    @router.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        return FileResponse(FAVICON, media_type="image/svg+xml", headers={"cache-control": "max-age=86400"})

    @router.post("/access", status_code=204)
    async def access(request: Request, body: AccessRequest) -> Response:
        match = next((t for t, k in tokens.items() if hmac.compare_digest(k.encode(), body.key.encode())), None)
        if match is None:
            return JSONResponse(error_body("bad_access_key", "That access key is not valid."),
                                status_code=401)
        response = Response(status_code=204)
        response.set_cookie(COOKIE, match, httponly=True, samesite="strict", secure=request.url.scheme == "https")
        return response

    return router


async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """Starlette's own errors (404 for an unknown route, 405, a body FastAPI cannot parse) in the envelope."""
    codes = {404: "not_found", 405: "method_not_allowed"}
    message = exc.detail if isinstance(exc.detail, str) else "Bad request."
    return JSONResponse(error_body(codes.get(exc.status_code, "bad_request"), message),
                        status_code=exc.status_code, headers=exc.headers)


