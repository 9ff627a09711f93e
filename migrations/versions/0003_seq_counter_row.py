"""The vector sequence counter's row exists from the start.

Every batch write locks that row (SELECT ... FOR UPDATE) to take its numbers in order. On a new
PostgreSQL catalog there was no row yet, so nothing was locked and two concurrent first runs
took the same numbers: a reader's index then missed vectors for good.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "INSERT INTO store_meta (key, value) SELECT 'vector_seq', '0' "
        "WHERE NOT EXISTS (SELECT 1 FROM store_meta WHERE key = 'vector_seq')"
    )


def downgrade() -> None:
    pass  # an unused counter row at 0 is what any write would have created
