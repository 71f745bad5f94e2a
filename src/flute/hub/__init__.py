"""The data owner's node: store (SQLAlchemy models + Alembic), ingest pipeline, pseudonyms,
and the summaries a data manager reads. Only this package opens the hub's database."""
