"""Zero-shot tags: each image's labels with their scores (`clipsearch tag`).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "image_tags",
        sa.Column("image_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("label", sa.Text(), primary_key=True),
        sa.Column("score", sa.Float(), nullable=False),
    )
    op.create_index("ix_image_tags_label", "image_tags", ["label"])


def downgrade() -> None:
    op.drop_index("ix_image_tags_label", table_name="image_tags")
    op.drop_table("image_tags")
