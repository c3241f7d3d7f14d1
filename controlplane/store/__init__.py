"""Persistence: SQLAlchemy Core tables, migrations and the queries that read and write them."""
