"""raw_messages: index (channel, sender, stored_at) for the per-sender rate limit

Why: every inbound SMS/WhatsApp message counts its sender's messages of the last 10 minutes
(hub/lines/ratelimit.py). Without an index that is a scan of the whole raw store per message:
163 ms at 200,000 rows on SQLite, 2.9 ms with it (bench in the commit message).

Revision ID: c3e8a1f4b6d2
Revises: b7d41c0e2a19
Create Date: 2026-11-28 11:05:00
"""
from alembic import op


revision = 'c3e8a1f4b6d2'
down_revision = 'b7d41c0e2a19'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('raw_messages', schema=None) as batch_op:
        batch_op.create_index('ix_raw_sender_recent', ['channel', 'sender', 'stored_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('raw_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_raw_sender_recent')
