"""ticket_counts: each change row also carries the ticket's created_at, due_at and incident_id

Why: GET /api/v1/stats/summary must stay < 100 ms right after a ticket changed, also with a
period filter, at a million tickets. A cached summary can then be brought up to date by
folding only the rows appended since (O(changes)): created_at says whether a change falls in
a period, due_at whether it moves the overdue count, incident_id which incidents to re-derive.
compact_counts folds the rows per key and drops these details (NULL), so the table stays one
row per key; rows already there (folded totals) keep NULL, which is what they mean.

The trigger on UPDATE now also fires when created_at, due_at or incident_id change (a merge
moves a ticket to another incident; the LAPOR! sync moves due times).

Revision ID: d9f4b2e6a871
Revises: c3e8a1f4b6d2
Create Date: 2026-11-28 13:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = 'd9f4b2e6a871'
down_revision = 'c3e8a1f4b6d2'
branch_labels = None
depends_on = None

_KEY = "status, opd_code, channel, kecamatan_code, urgency, created_at, due_at, incident_id"
_WATCHED = ("status", "opd_code", "channel", "kecamatan_code", "urgency", "created_at", "due_at", "incident_id")


def _sqlite_row(alias: str, n: int) -> str:
    a = alias
    return (f"INSERT INTO ticket_counts({_KEY}, n) VALUES ({a}.status, {a}.opd_code, {a}.channel, "
            f"COALESCE({a}.kecamatan_code, ''), {a}.urgency, {a}.created_at, {a}.due_at, {a}.incident_id, {n});")


SQLITE_TRIGGERS = [
    f"CREATE TRIGGER trg_ticket_counts_ins AFTER INSERT ON tickets BEGIN {_sqlite_row('NEW', 1)} END",
    f"CREATE TRIGGER trg_ticket_counts_del AFTER DELETE ON tickets BEGIN {_sqlite_row('OLD', -1)} END",
    f"""CREATE TRIGGER trg_ticket_counts_upd AFTER UPDATE OF {', '.join(_WATCHED)} ON tickets
        WHEN {' OR '.join(f'OLD.{c} IS NOT NEW.{c}' for c in _WATCHED)}
    BEGIN {_sqlite_row('OLD', -1)} {_sqlite_row('NEW', 1)} END""",
]

_PG_ROWS = "status, opd_code, channel, COALESCE(kecamatan_code, ''), urgency, created_at, due_at, incident_id"
_PG_DIFF = (f"({', '.join('o.' + c for c in _WATCHED)}) IS DISTINCT FROM ({', '.join('w.' + c for c in _WATCHED)})")
PG_FUNCTIONS = [
    f"""CREATE OR REPLACE FUNCTION simpul_ticket_counts_ins() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO ticket_counts({_KEY}, n)
        SELECT {_PG_ROWS}, count(*) FROM simpul_new GROUP BY 1, 2, 3, 4, 5, 6, 7, 8;
        RETURN NULL;
    END $$""",
    f"""CREATE OR REPLACE FUNCTION simpul_ticket_counts_del() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO ticket_counts({_KEY}, n)
        SELECT {_PG_ROWS}, -count(*) FROM simpul_old GROUP BY 1, 2, 3, 4, 5, 6, 7, 8;
        RETURN NULL;
    END $$""",
    f"""CREATE OR REPLACE FUNCTION simpul_ticket_counts_upd() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO ticket_counts({_KEY}, n)
        SELECT s, o, c, k, u, ca, da, i, sum(d) FROM (
            SELECT o.status AS s, o.opd_code AS o, o.channel AS c, COALESCE(o.kecamatan_code, '') AS k,
                   o.urgency AS u, o.created_at AS ca, o.due_at AS da, o.incident_id AS i, -1 AS d
              FROM simpul_old o JOIN simpul_new w ON w.id = o.id WHERE {_PG_DIFF}
            UNION ALL
            SELECT w.status, w.opd_code, w.channel, COALESCE(w.kecamatan_code, ''), w.urgency,
                   w.created_at, w.due_at, w.incident_id, 1
              FROM simpul_old o JOIN simpul_new w ON w.id = o.id WHERE {_PG_DIFF}
        ) t GROUP BY s, o, c, k, u, ca, da, i HAVING sum(d) <> 0;
        RETURN NULL;
    END $$""",
]


def upgrade() -> None:
    # Plain ADD COLUMN (nullable) on both stores: no table copy, so no trigger is lost.
    op.add_column('ticket_counts', sa.Column('created_at', sa.DateTime(), nullable=True))
    op.add_column('ticket_counts', sa.Column('due_at', sa.DateTime(), nullable=True))
    op.add_column('ticket_counts', sa.Column('incident_id', sa.Integer(), nullable=True))
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for name in ("ins", "del", "upd"):
            op.execute(f"DROP TRIGGER IF EXISTS trg_ticket_counts_{name}")
        for stmt in SQLITE_TRIGGERS:
            op.execute(stmt)
    elif dialect == "postgresql":  # the statement triggers stay; their functions change
        for stmt in PG_FUNCTIONS:
            op.execute(stmt)
    else:
        raise NotImplementedError(f"dashboard rollup triggers are written for sqlite and postgresql, not {dialect}")


def downgrade() -> None:
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "_simpul_b7d41c0e2a19", Path(__file__).with_name("b7d41c0e2a19_dashboard_rollup_and_indexes.py"))
    prev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prev)
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":  # triggers first: SQLite checks them when the table is rebuilt
        for name in ("ins", "del", "upd"):
            op.execute(f"DROP TRIGGER IF EXISTS trg_ticket_counts_{name}")
    else:
        for stmt in prev.PG_TRIGGERS[:3]:
            op.execute(stmt.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    with op.batch_alter_table('ticket_counts', schema=None) as batch_op:
        batch_op.drop_column('incident_id')
        batch_op.drop_column('due_at')
        batch_op.drop_column('created_at')
    if dialect == "sqlite":
        for stmt in prev.SQLITE_TRIGGERS:
            op.execute(stmt)
