"""Alembic environment: migrations run against the engine the hub would use."""
from alembic import context
from sqlmodel import SQLModel

import hub.models  # noqa: F401  (registers tables)
import hub.works.models  # noqa: F401  (works register tables, issue #16)
from hub.db import make_engine

target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url") or None
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=engine.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
