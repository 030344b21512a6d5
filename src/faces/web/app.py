"""The FastAPI application: ``create_app(settings)``.

The page uses only the JSON API under ``/api`` (described by the OpenAPI document at ``/api/openapi.json``).
Pages are Jinja2 templates (autoescaped) with JavaScript modules from ``/static``; no inline scripts, so the
Content-Security-Policy forbids them.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

import jinja2
from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.requests import cookie_parser

from faces.config import Settings
from faces.store.db import Store, open_store
from faces.web.auth import SESSION_COOKIE, SessionCodec, new_session
from faces.web.deps import SessionHolder, WebState, csrf_protect

log = logging.getLogger(__name__)
HERE = Path(__file__).parent

SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
     b"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
     b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
]


class SessionMiddleware:
    """Reads the signed session cookie into ``request.state.faces_session`` and writes it back when it changed;
    adds the security headers to every response. (Plain ASGI: cheap on every request.)"""

    def __init__(self, app, codec: SessionCodec):  # noqa: ANN001
        self.app = app
        self.codec = codec

    async def __call__(self, scope, receive, send):  # noqa: ANN001
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = None
        for key, value in scope.get("headers", ()):
            if key == b"cookie":
                raw = cookie_parser(value.decode("latin-1")).get(SESSION_COOKIE, raw)
        data = self.codec.loads(raw)
        holder = SessionHolder(data or new_session(), dirty=data is None)
        scope.setdefault("state", {})["faces_session"] = holder
        secure = scope.get("scheme") == "https"

        async def send_with_headers(message):  # noqa: ANN001
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {k.lower() for k, _ in headers}
                headers.extend((k, v) for k, v in SECURITY_HEADERS if k not in present)
                if holder.dirty:
                    cookie = (f"{SESSION_COOKIE}={self.codec.dumps(holder.data)}; Path=/; "
                              f"Max-Age={self.codec.max_age}; HttpOnly; SameSite=Lax")
                    if secure:
                        cookie += "; Secure"
                    headers.append((b"set-cookie", cookie.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    """The web application for ``settings``; ``store`` defaults to the settings' database (migrated)."""
    from faces.web.background import DetectionRunner
    from faces.web.routes import routers
    from faces.web.routes.images import PlainGalleryPages

    store = store or open_store(settings)
    templates = Jinja2Templates(env=jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                                                      autoescape=True))
    codec = SessionCodec(settings.get_secret_key())
    state = WebState(settings=settings, store=store, codec=codec, templates=templates)
    state.detection = DetectionRunner(store, settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        from faces.portability.sync import AutoSync

        auto_sync = AutoSync(store, settings, settings.sync_interval).start()  # clone sync every N seconds
        yield
        auto_sync.stop()
        state.detection.shutdown()

    app = FastAPI(title="faces", version="1", summary="Find, name and guess the faces in your photos.",
                  docs_url=None, redoc_url=None, openapi_url="/api/openapi.json",
                  dependencies=[Depends(csrf_protect)], lifespan=lifespan)
    app.state.faces = state
    for router in routers():
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.add_middleware(PlainGalleryPages)  # inside the session middleware (added last: outermost)
    app.add_middleware(SessionMiddleware, codec=codec)
    return app


def create_app_from_env() -> FastAPI:
    """The app for ``settings`` from the environment (``FACES_*``): the factory each worker process of
    ``faces serve --workers N`` calls."""
    from faces.config import load_settings
    from faces.logs import setup_logging
    from faces.sharing.admin_settings import apply_stored_log_level

    settings = load_settings()
    setup_logging(settings.ensure_data_dir(), settings.log_level)
    store = open_store(settings)
    apply_stored_log_level(store)  # the level the admin chose in the page outlives restarts
    return create_app(settings, store)
