"""What the works register adds to the hub (listed in hub.wiring.FEATURES): the API and page
routers, the draft hook that links citizens' reports to projects, the "Proyek terkait" section of
the staff ticket page, the periodic red-flag job and the contractor form's upload limit."""
from __future__ import annotations

import asyncio

from hub.config import regency_config
from hub.db import get_engine
from hub.parts import Line, Periodic
from hub.settings import Settings, get_settings
from hub.web.uploads import MAX_BYTES
from hub.works import api, pages, ticket_page
from hub.works.linking import draft_hook

FLAG_INTERVAL_S = 900.0


async def flags_job() -> None:
    from hub.works.service import recompute_all

    def run() -> None:
        recompute_all(get_engine(), regency_config(str(get_settings().config_dir)))

    await asyncio.to_thread(run)


def feature(settings: Settings) -> Line:
    return Line("works", routers=[api.router, pages.router, ticket_page.router], draft_hooks=[draft_hook],
                ticket_panels=[ticket_page.panel],  # "Proyek terkait" on the staff ticket page
                periodic=[Periodic("works_flags", FLAG_INTERVAL_S, flags_job)],
                # the contractor's progress form carries a photo
                body_limits={"/mitra/": MAX_BYTES + 256 * 1024})
