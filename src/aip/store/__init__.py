"""The control plane's store: SQLAlchemy tables, Alembic migrations, repositories."""
