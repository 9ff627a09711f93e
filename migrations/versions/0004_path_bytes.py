"""images.path_bytes: the exact bytes of a path that is not valid UTF-8.

Such files (archives from old cameras and Windows machines) were refused; now `path` holds the name
with \\xNN escapes and `path_bytes` the bytes the file is opened with. NULL for every other path.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("images", sa.Column("path_bytes", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.drop_column("path_bytes")
