"""raw_messages.attempts: failed processing attempts of a message, counted in the store so
that "parked after 3 tries" holds across restarts and several processes (issue #15)

Revision ID: f1a3b5c7d902
Revises: e5a7c2d9f013
Create Date: 2026-11-30 16:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = 'f1a3b5c7d902'
down_revision = 'e5a7c2d9f013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('raw_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('raw_messages', schema=None) as batch_op:
        batch_op.drop_column('attempts')
