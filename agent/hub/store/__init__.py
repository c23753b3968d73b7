"""The hub database (SQLite by default, PostgreSQL for several workers): alerts with their
crops and adjudications, deployment reports, device keys; its migrations and change feed.
Start at ``database.py`` (``HubDatabase``)."""
