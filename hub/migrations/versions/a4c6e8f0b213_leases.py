"""leases: named leases so that one of several hub processes does a piece of periodic work
(the router's retraining) at a time (issue #15)

Revision ID: a4c6e8f0b213
Revises: f1a3b5c7d902
Create Date: 2026-11-30 16:30:00
"""
import sqlalchemy as sa
from alembic import op


revision = 'a4c6e8f0b213'
down_revision = 'f1a3b5c7d902'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'leases',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('owner', sa.String(length=120), nullable=False),
        sa.Column('until', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade() -> None:
    op.drop_table('leases')
