"""Alembic migrations of the hub database, run by ``schema_upgrade`` when it is opened."""
