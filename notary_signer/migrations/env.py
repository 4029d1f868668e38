"""Alembic environment for the signer's schema.

Run through :func:`notary_signer.db.migrate`, which passes an open connection in
``config.attributes["connection"]``; ``sqlalchemy.url`` is used otherwise.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

config = context.config
version_table = config.get_main_option("version_table") or "notary_signer_alembic_version"


def _run(connection: Connection) -> None:
    context.configure(connection=connection, version_table=version_table)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url or pass a connection to run signer migrations")
    with create_engine(url).begin() as conn:
        _run(conn)
