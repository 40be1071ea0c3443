"""The web front of Simpul, served by the hub: dashboard, ticket pages, OPD
view, admin, and the citizens' report and follow-up pages. Server-rendered Jinja2 with a little
plain JavaScript of our own, plus the bundled Leaflet for the map. Pages call hub functions, not HTTP.
"""
from __future__ import annotations

from starlette.middleware.sessions import SessionMiddleware
from starlette.staticfiles import StaticFiles

from hub.auth import carries_api_key
from hub.parts import Line, Periodic
from hub.settings import Settings


def _install(app) -> None:
    from hub.web import admin, export, maps, public, routes
    from hub.web.pages import STATIC_DIR, install_error_pages
    from hub.web.security import SESSION_HOURS

    settings = app.state.settings
    app.add_middleware(SessionUnlessApiKey, secret_key=settings.secret_key, session_cookie="simpul_sesi",
                       max_age=SESSION_HOURS * 3600, same_site="lax",
                       https_only=str(settings.public_url).startswith("https://"))
    app.add_middleware(GzipUnlessApiKey)  # outermost: compresses pages, JSON and static files
    app.mount("/static", CachedStatic(directory=STATIC_DIR), name="static")
    for module in (routes, export, maps, admin, public):
        app.include_router(module.router)
    install_error_pages(app)


class SessionUnlessApiKey:
    """Starlette's SessionMiddleware, skipped for requests that present an API key: systems
    and providers never use the session cookie, and the intake hot path saves the work."""

    def __init__(self, app, **kwargs):
        self.app = app
        self.with_session = SessionMiddleware(app, **kwargs)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and carries_api_key(scope):
            scope["session"] = {}
            return await self.app(scope, receive, send)
        return await self.with_session(scope, receive, send)


class GzipUnlessApiKey:
    """Starlette's GZipMiddleware for browsers; skipped for requests with an API key (intake,
    OPD systems) and provider webhooks: their answers are small and the intake path is hot."""

    def __init__(self, app, minimum_size: int = 600):
        from starlette.middleware.gzip import GZipMiddleware

        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=minimum_size, compresslevel=6)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or carries_api_key(scope) or scope["path"].startswith("/webhooks/"):
            return await self.app(scope, receive, send)
        return await self.gzip(scope, receive, send)


class CachedStatic(StaticFiles):
    """Static files with Cache-Control: a year and immutable when the URL carries the content
    version (`?v=`, hub.web.pages.asset_version), an hour otherwise."""

    async def get_response(self, path, scope):
        resp = await super().get_response(path, scope)
        if resp.status_code in (200, 304):
            versioned = b"v=" in (scope.get("query_string") or b"")
            resp.headers["Cache-Control"] = "public, max-age=31536000, immutable" if versioned else "public, max-age=3600"
        return resp


async def _compact_stats() -> None:
    import asyncio

    from hub.db import get_engine
    from hub.stats import COMPACT_MIN_ROWS, compact_counts

    await asyncio.to_thread(compact_counts, get_engine(), min_rows=COMPACT_MIN_ROWS)


def feature(settings: Settings) -> Line:
    """The pages (the hotline console is the hotline line's), the session cookie also for the
    JSON API, larger bodies for the forms that carry a photo, the dashboard's warm counts."""
    from hub.web import warm
    from hub.web.security import api_session_resolver
    from hub.web.uploads import MAX_BYTES

    return Line("web", install=_install,
                body_limits={prefix: MAX_BYTES + 256 * 1024 for prefix in ("/lapor", "/tiket/")},
                session_resolvers=[api_session_resolver],
                startup=[warm.start], shutdown=[warm.stop],
                periodic=[Periodic("stats_compact", 60.0, _compact_stats)])
