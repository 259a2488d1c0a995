"""The FastAPI application: routers, error handling, limits, CORS (off unless configured), metrics."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from idp_api.config import ApiConfig, load_config
from idp_api.limits import MULTIPART_OVERHEAD, BodySizeLimit
from idp_api.pages import PageViews
from idp_api.routes import documents, review, search, system
from idp_api.security import AuthError
from idp_api.services import Services, open_services
from idp_api.telemetry import ApiMetrics, MetricsMiddleware

log = logging.getLogger("idp_api")
API_PREFIX = "/api/v1"
# no scripts at all; inline style attributes only (the field boxes' computed positions)
_REVIEW_CSP = ("default-src 'self'; script-src 'none'; img-src 'self'; style-src 'self'; "
               "style-src-attr 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")


def create_app(config: ApiConfig | None = None, services: Services | None = None) -> FastAPI:
    config = config or (services.config if services else load_config())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        svc = services or open_services(config)
        app.state.services = svc
        app.state.metrics = ApiMetrics(svc.instance)
        app.state.pages = PageViews(svc.instance, svc.resources, svc.store)
        log.info("IDP API ready on %s:%s (%d worker(s))", config.host, config.port, config.workers)
        try:
            yield
        finally:
            if services is None:
                svc.close()

    app = FastAPI(title="IDP document API", version="1", lifespan=lifespan,
                  description="Upload documents, follow their processing per stage, read fields and exports, "
                              "search, explore the graph; review page at /review.",
                  openapi_url=f"{API_PREFIX}/openapi.json", docs_url=None, redoc_url=None)
    _mount_docs(app)
    app.include_router(documents.router)
    app.include_router(search.router)
    app.include_router(system.router)
    app.include_router(review.router)
    app.mount("/review/static", review.static, name="review-static")

    @app.exception_handler(AuthError)
    async def auth_error(request: Request, exc: AuthError):
        if request.url.path.startswith("/review"):
            return review.error_page(request, exc.status, exc.message)
        headers = {"WWW-Authenticate": 'Bearer realm="idp"'} if exc.status == 401 else None
        return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=headers)

    app.add_middleware(SecurityHeaders)
    if config.cors_origins:  # off unless IDP_API_CORS_ORIGINS names origins
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_credentials=False,
                           allow_methods=["GET", "POST"], allow_headers=["Authorization", "X-API-Key", "Content-Type"])
    app.add_middleware(BodySizeLimit, path=f"{API_PREFIX}/documents",
                       max_bytes=config.max_upload_bytes + MULTIPART_OVERHEAD)
    app.add_middleware(MetricsMiddleware)
    return app


def _mount_docs(app: FastAPI) -> None:
    """The Swagger UI page at /api/v1/docs with its script and styles served by this service (the
    `swagger-ui-bundle` wheel), not from a CDN: the page works on a machine without internet access."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    static = f"{API_PREFIX}/docs/static"
    app.mount(static, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")

    @app.get(f"{API_PREFIX}/docs", include_in_schema=False)
    async def docs_page():
        return get_swagger_ui_html(openapi_url=f"{API_PREFIX}/openapi.json", title="IDP document API",
                                   swagger_js_url=f"{static}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{static}/swagger-ui.css",
                                   swagger_favicon_url=f"{static}/favicon-32x32.png")


class SecurityHeaders:
    """ASGI middleware: nosniff and no referrer everywhere; the review page gets a CSP without scripts and may
    not be framed."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
        if scope["path"].startswith("/review"):
            extra += [(b"content-security-policy", _REVIEW_CSP.encode()), (b"x-frame-options", b"DENY")]

        async def send_with_headers(msg):
            if msg["type"] == "http.response.start":
                names = {k.lower() for k, _ in msg.get("headers", [])}
                msg = {**msg, "headers": [*msg.get("headers", []), *[(k, v) for k, v in extra if k not in names]]}
            await send(msg)

        await self.app(scope, receive, send_with_headers)
