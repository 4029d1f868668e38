"""Alembic environment for the trust server's metadata database.

Run through :func:`notary_server.storage.sql.migrate`, which puts the database URL
in the config as ``sqlalchemy.url``. Logging is left to the application: no
``fileConfig`` here.

Concurrent start-ups are serialised: PostgreSQL takes a session advisory lock for
the whole upgrade; SQLite runs it in one ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

from notary_server.storage.models import Base
from notary_server.storage.sql import (
    SQLITE_BEGIN_OPTION,
    SQLITE_BUSY_TIMEOUT_S,
    configure_sqlite,
    normalize_url,
)

# Our own version table, so the signer's migrations can share a database.
VERSION_TABLE = "notary_server_alembic_version"
# pg_advisory_lock key: b"notarmig" as a 64-bit integer.
PG_MIGRATION_LOCK = 0x6E6F7461726D6967

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("sqlalchemy.url is not set in the Alembic config")
    return url


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = normalize_url(_url())
    sqlite = url.get_backend_name() == "sqlite"
    connect_args = {"timeout": SQLITE_BUSY_TIMEOUT_S} if sqlite else {}
    engine = create_engine(url, poolclass=pool.NullPool, connect_args=connect_args)
    postgres = url.get_backend_name() == "postgresql"
    if sqlite:
        configure_sqlite(engine)
    try:
        with engine.connect() as connection:
            if sqlite:
                connection.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
            if postgres:
                connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": PG_MIGRATION_LOCK})
                connection.commit()
            try:
                context.configure(
                    connection=connection,
                    target_metadata=target_metadata,
                    version_table=VERSION_TABLE,
                    # SQLite can roll DDL back once pysqlite stops managing BEGIN.
                    transactional_ddl=True if sqlite else None,
                    render_as_batch=sqlite,
                )
                with context.begin_transaction():
                    context.run_migrations()
            finally:
                if postgres:
                    connection.rollback()
                    connection.execute(
                        text("SELECT pg_advisory_unlock(:k)"), {"k": PG_MIGRATION_LOCK}
                    )
                    connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
