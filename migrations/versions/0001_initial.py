"""Initial catalog: store metadata, images with their vectors, tombstones.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "store_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("path", sa.Text(), nullable=False, unique=True),
        sa.Column("root", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(64)),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("width", sa.Integer()),
        sa.Column("height", sa.Integer()),
        sa.Column("taken_at", sa.DateTime()),
        sa.Column("camera", sa.Text()),
        sa.Column("orientation", sa.Integer()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("embedding", sa.LargeBinary()),
        sa.Column("model_id", sa.Text()),
        sa.Column("vec_seq", sa.BigInteger(), nullable=False),
        sa.Column("indexed_at", sa.DateTime()),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_images_content_hash", "images", ["content_hash"])
    op.create_index("ix_images_taken_at", "images", ["taken_at"])
    op.create_index("ix_images_vec_seq", "images", ["vec_seq"])
    op.create_index("ix_images_root", "images", ["root"])
    op.create_table(
        "tombstones",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tombstones")
    op.drop_table("images")
    op.drop_table("store_meta")
