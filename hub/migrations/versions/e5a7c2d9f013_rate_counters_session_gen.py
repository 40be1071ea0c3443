"""rate_counters (the one rate limiter, shared by every process) and users.session_gen
(logout ends every earlier session server-side)

Revision ID: e5a7c2d9f013
Revises: e5a7c3d1f902
Create Date: 2026-11-30 14:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = 'e5a7c2d9f013'
down_revision = 'e5a7c3d1f902'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'rate_counters',
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('window_start', sa.Integer(), nullable=False),
        sa.Column('window_s', sa.Integer(), nullable=False),
        sa.Column('hits', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('key'),
    )
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_gen', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_gen')
    op.drop_table('rate_counters')
