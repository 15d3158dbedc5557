"""The FastAPI application factory: create_app(settings) wires storage, queue and routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from backend import __version__
from backend.api.errors import domain_exception_handler, validation_exception_handler
from backend.api.middleware import BodyLimit, InputGuard, SecurityHeaders, WriteGuard
from backend.api.routes import (
    compare,
    datasets,
    experiments,
    health,
    measurements,
    metrics,
    models,
    ops,
    pages,
    parcoords,
    runs,
    studies,
    sweeps,
    techniques,
    variants,
)
from backend.core.errors import OptiboardError
from backend.core.settings import Settings
from backend.dispatch.maintenance import Maintenance
from backend.dispatch.model_check import SandboxChecker
from backend.dispatch.queue import JobQueue
from backend.dispatch.studies import StudyLoop
from backend.store.db import make_engine, make_sessionmaker, sqlite_read_only
from backend.store.hot_reads import HotReads

log = logging.getLogger(__name__)

ROUTERS = [
    health.router,
    runs.hot_router,
    runs.router,
    metrics.router,
    variants.router,
    experiments.router,
    datasets.router,
    models.router,
    sweeps.router,
    studies.router,
    techniques.router,
    compare.router,
    parcoords.router,
    measurements.router,
    ops.router,
    pages.router,
]


def plotly_js_dir() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data"


def api_docs_dir() -> Path:
    """Swagger UI's and ReDoc's files as the fastapi-offline wheel ships them."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


class ReadOnlyGets:
    """GET and HEAD requests only read: their SQLite transactions begin DEFERRED (see
    backend.store.db.sqlite_read_only), so concurrent page loads never queue for the write lock."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        token = sqlite_read_only.set(True)  # copied into the threadpool with the context
        try:
            await self.app(scope, receive, send)
        finally:
            sqlite_read_only.reset(token)


def create_app(settings: Settings | None = None, *, maintenance: bool = True) -> FastAPI:
    settings = settings or Settings()
    settings.ensure_dirs()
    engine = make_engine(settings.db_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    factory = make_sessionmaker(engine)
    queue = JobQueue(settings)
    hot_reads = HotReads(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = None
        if maintenance:
            loop = Maintenance(
                factory,
                queue,
                interval_s=settings.reaper_interval_s,
                heartbeat_timeout_s=settings.heartbeat_timeout_s,
                external_idle_timeout_s=settings.external_idle_timeout_s,
            )
            loop.start()
            app.state.study_loop = StudyLoop(
                factory, queue, interval_s=settings.study_interval_s, max_attempts=settings.max_attempts
            )
            app.state.study_loop.start()
        yield
        if loop:
            loop.stop()
            app.state.study_loop.stop()
        queue.close()
        hot_reads.close()
        engine.dispose()

    # FastAPI's OpenTelemetry hooks look up the global providers on every request; optiboard
    # exports its own Prometheus metrics (/metrics), so they stay off.
    # /docs and /redoc are pages of ours (routes/pages.py) on files the API serves itself
    app = FastAPI(
        title="optiboard",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        description="Launch and compare model-optimization runs.",
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = factory
    app.state.queue = queue
    app.state.hot_reads = hot_reads
    # one per app, so its concurrency bound holds across requests (routes/models.py)
    app.state.model_checker = SandboxChecker(
        memory_mb=settings.model_check_memory_mb,
        cpu_s=settings.model_check_cpu_s,
        timeout_s=settings.model_check_timeout_s,
        max_expanded_bytes=settings.max_model_bytes,
        concurrency=settings.model_check_concurrency,
    )
    for router in ROUTERS:
        app.include_router(router)
    app.add_exception_handler(RequestValidationError, validation_exception_handler)
    app.add_exception_handler(OptiboardError, domain_exception_handler)
    app.mount("/static/vendor", StaticFiles(directory=plotly_js_dir()), name="vendor")
    app.mount("/static/apidocs", StaticFiles(directory=api_docs_dir()), name="apidocs")
    if settings.frontend_dir.is_dir():
        app.mount("/static", StaticFiles(directory=settings.frontend_dir), name="static")
    app.add_middleware(InputGuard)  # innermost: sees bodies BodyLimit has already bounded
    app.add_middleware(WriteGuard)  # writes authenticated (and same-origin) before InputGuard reads them
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes, upload_max_bytes=settings.max_upload_bytes)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(ReadOnlyGets)
    return app
