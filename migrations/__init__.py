"""Alembic environment for the catalog schema (packaged so installed wheels can upgrade stores)."""

from pathlib import Path

MIGRATIONS_DIR = Path(__file__).parent
