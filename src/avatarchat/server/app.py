"""App factory. Every dependency (settings, LLM, TTS, renderer, ASR) comes in through ``create_app``, so tests
build the real app around any backend; ``services.start_services`` builds what runs behind it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from avatarchat.asr import ASR
from avatarchat.errors import AvatarChatError, error_body, redact
from avatarchat.llm import LLM
from avatarchat.render import Renderer
from avatarchat.server import avatars, routes, ws
from avatarchat.server.access import docs_urls
from avatarchat.server.health import DEFAULT_CHECKS, HealthCheck
from avatarchat.server.security import secure
from avatarchat.services import start_services
from avatarchat.settings import Settings
from avatarchat.tts import TTS

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, llm: LLM | None = None, tts: TTS | None = None,
               renderer: Renderer | None = None, asr: ASR | None = None, with_worker: bool = False,
               health_checks: Sequence[HealthCheck] = DEFAULT_CHECKS) -> FastAPI:
    """``with_worker`` (Redis mode): this process also claims and renders speech jobs; ``health_checks``: what
    /healthz asks (``server/health.py``)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        try:
            # a Redis-mode web node renders nothing unless it runs a worker too
            app.state.services = await start_services(settings, llm=llm, tts=tts, renderer=renderer, asr=asr,
                                                      renders=with_worker or not settings.redis_url)
        except AvatarChatError as exc:  # a configuration problem: say it plainly before uvicorn's traceback
            log.error("avatarchat cannot start: %s", redact(exc.message, settings.secrets()))
            raise
        if with_worker:
            app.state.services.start_worker()
        try:
            yield
        finally:  # every reply is cancelled; nothing waits without bound; no half-written clip stays behind
            await app.state.services.aclose()

    app = FastAPI(title="avatarchat", lifespan=lifespan, **docs_urls(settings))
    app.state.health_checks = tuple(health_checks)
    secure(app, settings)  # Host/Origin/access key, rates, body limits, security headers, favicon

    @app.exception_handler(AvatarChatError)
    async def _app_error(request: Request, exc: AvatarChatError) -> JSONResponse:
        if exc.status >= 500:
            log.warning("%s %s failed: %s", request.method, request.url.path, redact(exc.message, settings.secrets()))
        return JSONResponse(error_body(exc.code, exc.public), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(x) for x in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors()]
        return JSONResponse(error_body("bad_request", "; ".join(parts)), status_code=422)

    app.include_router(routes.router)
    app.include_router(ws.router)
    app.include_router(avatars.router)
    app.mount("/static", StaticFiles(directory=routes.WEB_DIR), name="static")
    return app
