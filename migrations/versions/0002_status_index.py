"""Index images.status: status counts and the failed-files list stop scanning every row.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_images_status", "images", ["status"])


def downgrade() -> None:
    op.drop_index("ix_images_status", table_name="images")
