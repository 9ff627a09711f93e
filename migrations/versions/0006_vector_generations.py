"""Vector generations: a store can hold a second model's vectors beside the first (`clipsearch reembed`).

The store's existing vectors become generation 1, the active one, in place: the active
generation's vectors stay in images.embedding, so nothing is copied and nothing can be lost.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    generations = op.create_table(
        "generations",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.Text(), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=True),
        sa.Column("switched_at", sa.DateTime(), nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "generation_vectors",
        sa.Column("generation_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("image_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("src_seq", sa.BigInteger(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
    )
    conn = op.get_bind()
    raw = conn.execute(sa.text("SELECT value FROM store_meta WHERE key = 'model'")).scalar()
    if raw:
        model = json.loads(raw)
        op.bulk_insert(
            generations,
            [
                {
                    "id": 1,
                    "model_id": model["model_id"],
                    "spec": model["spec"],
                    "dim": int(model["dim"]),
                    "state": "active",
                    "created_at": None,
                    "switched_at": None,
                }
            ],
        )
        if conn.dialect.name == "postgresql":
            # An explicit id leaves the serial's sequence behind: the next generation would take 1.
            conn.execute(sa.text("SELECT setval(pg_get_serial_sequence('generations', 'id'), 1)"))


def downgrade() -> None:
    op.drop_table("generation_vectors")
    op.drop_table("generations")
