"""Named leases in the database, so that of several hub processes only one does a piece of
periodic work at a time (the router's retraining): SQLite and PostgreSQL alike.

One row per name in `leases` (owner, until: epoch seconds). `acquire` is one
INSERT ... ON CONFLICT DO UPDATE ... WHERE until <= now ... RETURNING: it takes a free or
expired lease, or answers False when another owner holds it, atomically on both stores.
`release` hands it back, optionally keeping everyone out for `hold_s` more seconds (once per
interval). A holder that dies leaves the lease to expire after its `lease_s`.
"""
from __future__ import annotations

import os
import socket
import time
import uuid

from sqlalchemy import Engine, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from hub.db import writer
from hub.models import Lease

L = Lease.__table__
PROCESS_ID = f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def acquire(engine: Engine, name: str, lease_s: float, owner: str = PROCESS_ID, now: float | None = None) -> bool:
    """Take lease `name` for `lease_s` seconds if nobody else holds it. True if we now hold it."""
    now = time.time() if now is None else now
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(L).values(name=name, owner=owner, until=now + lease_s)
    stmt = stmt.on_conflict_do_update(
        index_elements=[L.c.name], set_={"owner": owner, "until": now + lease_s},
        where=L.c.until <= now).returning(L.c.owner)
    with writer(engine).begin() as conn:
        return conn.execute(stmt).scalar_one_or_none() == owner


def release(engine: Engine, name: str, owner: str = PROCESS_ID, hold_s: float = 0.0,
            now: float | None = None) -> None:
    """Give lease `name` back; with `hold_s`, nobody (us included) takes it for that long."""
    now = time.time() if now is None else now
    with writer(engine).begin() as conn:
        conn.execute(update(L).where(L.c.name == name, L.c.owner == owner)
                     .values(until=now + max(hold_s, 0.0)))
