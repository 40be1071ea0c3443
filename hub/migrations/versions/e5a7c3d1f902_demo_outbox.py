"""demo_outbox: what lines without credentials would have sent, in demo mode (SIMPUL_DEMO=true)

Revision ID: e5a7c3d1f902
Revises: 4e7cd4495eea
Create Date: 2026-11-30 14:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = 'e5a7c3d1f902'
down_revision = '4e7cd4495eea'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'demo_outbox',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('message_id', sa.String(length=64), nullable=False, unique=True),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('channel', sa.String(length=20), nullable=False),
        sa.Column('to', sa.String(length=300), nullable=False),
        sa.Column('subject', sa.String(length=300), nullable=True),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('ticket_code', sa.String(length=16), nullable=True),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('demo_outbox')
