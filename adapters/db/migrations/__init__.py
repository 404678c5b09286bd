"""Alembic migrations of the product's database; `adapters.db.migrate` runs them."""
