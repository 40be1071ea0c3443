"""Wires the works register into the hub when imported (listed in hub/plugins.py MODULES):
the API and page routers, the draft hook that links citizens' reports to projects, and the
periodic red-flag job. Re-wire these four lines if the hub's registration changes."""
from __future__ import annotations

from hub.app import ROUTER_HOOKS
from hub.settings import get_settings

FLAG_INTERVAL_S = 900.0


def _install(app) -> None:
    from hub.works import api, pages

    app.include_router(api.router)
    app.include_router(pages.router)


async def flags_job() -> None:
    import asyncio

    def run() -> None:
        from hub.config import regency
        from hub.db import get_engine
        from hub.works.service import recompute_all

        recompute_all(get_engine(), regency(str(get_settings().config_dir)))

    await asyncio.to_thread(run)


def _register() -> None:
    from hub.tickets import DRAFT_HOOKS
    from hub.workers import register_periodic
    from hub.works.linking import draft_hook

    from hub.app import BODY_LIMITS
    from hub.web.uploads import MAX_BYTES

    BODY_LIMITS["/mitra/"] = MAX_BYTES + 256 * 1024  # the contractor's progress form carries a photo
    if _install not in ROUTER_HOOKS:
        ROUTER_HOOKS.append(_install)
    if draft_hook not in DRAFT_HOOKS:
        DRAFT_HOOKS.append(draft_hook)
    register_periodic("works_flags", FLAG_INTERVAL_S, flags_job)


_register()
