"""The PostgreSQL backend (the ``postgres`` extra: psycopg, psycopg-pool, pgvector)."""

from memex.storage.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
