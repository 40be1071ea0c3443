"""dashboard: ticket_counts rollup maintained by triggers, indexes for open/closed tickets

Why: GET /api/v1/stats/summary must answer in < 100 ms with 1,000,000 tickets. Counting the
whole tickets table on every call cannot; the triggers below append +1/-1 rows per change to
ticket_counts (insert-only, so concurrent writers never fight over a counter row), and
hub.stats.compact_counts folds them periodically.

Revision ID: b7d41c0e2a19
Revises: 70326750a9a6
Create Date: 2026-11-28 10:55:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = 'b7d41c0e2a19'
down_revision = '70326750a9a6'
branch_labels = None
depends_on = None

_KEY = "status, opd_code, channel, kecamatan_code, urgency"

SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER trg_ticket_counts_ins AFTER INSERT ON tickets BEGIN
        INSERT INTO ticket_counts({_KEY}, n)
        VALUES (NEW.status, NEW.opd_code, NEW.channel, COALESCE(NEW.kecamatan_code, ''), NEW.urgency, 1);
    END""",
    f"""CREATE TRIGGER trg_ticket_counts_del AFTER DELETE ON tickets BEGIN
        INSERT INTO ticket_counts({_KEY}, n)
        VALUES (OLD.status, OLD.opd_code, OLD.channel, COALESCE(OLD.kecamatan_code, ''), OLD.urgency, -1);
    END""",
    f"""CREATE TRIGGER trg_ticket_counts_upd
        AFTER UPDATE OF status, opd_code, channel, kecamatan_code, urgency ON tickets
        WHEN OLD.status IS NOT NEW.status OR OLD.opd_code IS NOT NEW.opd_code
          OR OLD.channel IS NOT NEW.channel OR OLD.kecamatan_code IS NOT NEW.kecamatan_code
          OR OLD.urgency IS NOT NEW.urgency
    BEGIN
        INSERT INTO ticket_counts({_KEY}, n)
        VALUES (OLD.status, OLD.opd_code, OLD.channel, COALESCE(OLD.kecamatan_code, ''), OLD.urgency, -1);
        INSERT INTO ticket_counts({_KEY}, n)
        VALUES (NEW.status, NEW.opd_code, NEW.channel, COALESCE(NEW.kecamatan_code, ''), NEW.urgency, 1);
    END""",
]

# PostgreSQL: statement-level triggers with transition tables, so a bulk insert of many rows
# adds one rollup row per key instead of one per ticket.
_PG_ROWS = "status, opd_code, channel, COALESCE(kecamatan_code, ''), urgency"
PG_TRIGGERS = [
    f"""CREATE FUNCTION simpul_ticket_counts_ins() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO ticket_counts({_KEY}, n)
        SELECT {_PG_ROWS}, count(*) FROM simpul_new GROUP BY 1, 2, 3, 4, 5;
        RETURN NULL;
    END $$""",
    f"""CREATE FUNCTION simpul_ticket_counts_del() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO ticket_counts({_KEY}, n)
        SELECT {_PG_ROWS}, -count(*) FROM simpul_old GROUP BY 1, 2, 3, 4, 5;
        RETURN NULL;
    END $$""",
    f"""CREATE FUNCTION simpul_ticket_counts_upd() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO ticket_counts({_KEY}, n)
        SELECT s, o, c, k, u, sum(d) FROM (
            SELECT o.status AS s, o.opd_code AS o, o.channel AS c, COALESCE(o.kecamatan_code, '') AS k,
                   o.urgency AS u, -1 AS d
              FROM simpul_old o JOIN simpul_new w ON w.id = o.id
             WHERE (o.status, o.opd_code, o.channel, o.kecamatan_code, o.urgency)
                   IS DISTINCT FROM (w.status, w.opd_code, w.channel, w.kecamatan_code, w.urgency)
            UNION ALL
            SELECT w.status, w.opd_code, w.channel, COALESCE(w.kecamatan_code, ''), w.urgency, 1
              FROM simpul_old o JOIN simpul_new w ON w.id = o.id
             WHERE (o.status, o.opd_code, o.channel, o.kecamatan_code, o.urgency)
                   IS DISTINCT FROM (w.status, w.opd_code, w.channel, w.kecamatan_code, w.urgency)
        ) t GROUP BY s, o, c, k, u HAVING sum(d) <> 0;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER trg_ticket_counts_ins AFTER INSERT ON tickets REFERENCING NEW TABLE AS simpul_new
       FOR EACH STATEMENT EXECUTE FUNCTION simpul_ticket_counts_ins()""",
    """CREATE TRIGGER trg_ticket_counts_del AFTER DELETE ON tickets REFERENCING OLD TABLE AS simpul_old
       FOR EACH STATEMENT EXECUTE FUNCTION simpul_ticket_counts_del()""",
    """CREATE TRIGGER trg_ticket_counts_upd AFTER UPDATE ON tickets
       REFERENCING OLD TABLE AS simpul_old NEW TABLE AS simpul_new
       FOR EACH STATEMENT EXECUTE FUNCTION simpul_ticket_counts_upd()""",
]


def upgrade() -> None:
    op.create_table('ticket_counts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('opd_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('kecamatan_code', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('urgency', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sqlite_autoincrement=True,
    )
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index("ix_tickets_closed", ["closed_at", "status", "opd_code", "created_at"], unique=False)
        batch_op.create_index('ix_tickets_open_dims', ['status', 'due_at', 'urgency', 'opd_code', 'channel',
                                                       'kecamatan_code', 'incident_id'], unique=False)
    dialect = op.get_bind().dialect.name
    statements = {"sqlite": SQLITE_TRIGGERS, "postgresql": PG_TRIGGERS}.get(dialect)
    if statements is None:
        raise NotImplementedError(f"dashboard rollup triggers are written for sqlite and postgresql, not {dialect}")
    for stmt in statements:
        op.execute(stmt)
    if dialect == "postgresql":  # compaction leaves dead rows every minute: vacuum them promptly
        op.execute("ALTER TABLE ticket_counts SET (autovacuum_vacuum_scale_factor = 0.0, "
                   "autovacuum_vacuum_threshold = 10000, autovacuum_analyze_threshold = 10000)")
    # Tickets that exist already.
    op.execute(f"INSERT INTO ticket_counts({_KEY}, n) "
               f"SELECT status, opd_code, channel, COALESCE(kecamatan_code, ''), urgency, count(*) "
               f"FROM tickets GROUP BY status, opd_code, channel, COALESCE(kecamatan_code, ''), urgency")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name in ("ins", "del", "upd"):
        op.execute(f"DROP TRIGGER IF EXISTS trg_ticket_counts_{name}" + (" ON tickets" if dialect == "postgresql" else ""))
        if dialect == "postgresql":
            op.execute(f"DROP FUNCTION IF EXISTS simpul_ticket_counts_{name}()")
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_open_dims')
        batch_op.drop_index('ix_tickets_closed')
    op.drop_table('ticket_counts')
