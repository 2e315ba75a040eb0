from __future__ import annotations

from alembic import context

from ordermesh.adapters.store.db import make_engine
from ordermesh.adapters.store.tables import Base

config = context.config
url = config.attributes.get("database_url")


def run_migrations() -> None:
    engine = make_engine(url, pool_size=1)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations()
