"""Alembic environment: migrations run against the URL decide passes in, online only."""

from alembic import context

from decide.store.db import make_engine
from decide.store.models import Base

config = context.config
engine = make_engine(config.get_main_option("sqlalchemy.url"))
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
