"""The signer's database: engine creation and schema migrations.

SQLite is the embedded default (WAL journal, a busy timeout so that gunicorn's
threads and workers wait for each other instead of failing); PostgreSQL and MySQL
work through their SQLAlchemy URLs. The schema is owned by the Alembic migrations
packaged in ``notary_signer/migrations`` and is applied with :func:`migrate`; the
signer keeps its own version table so it can share a database server with others.
Alembic is imported only to migrate or check (in a child process at start-up): a
serving signer does not carry it (about 10 MiB).

Example::

    engine = make_engine("sqlite:///var/notary-signer.db")
    migrate(engine)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["VERSION_TABLE", "is_current", "is_sqlite", "make_engine", "migrate"]

logger = logging.getLogger(__name__)

VERSION_TABLE = "notary_signer_alembic_version"
_MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def is_sqlite(url: str) -> bool:
    """Return True if ``url`` names an SQLite database."""
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for ``url``; for SQLite, create the parent directory, use WAL.

    Args:
        url: SQLAlchemy database URL.
        **kwargs: Passed to :func:`sqlalchemy.create_engine`.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(url, **kwargs)
    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    return engine


def _alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("version_table", VERSION_TABLE)
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema of ``engine``'s database to ``revision``."""
    from alembic import command

    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    logger.info("signer database migrated to %s", revision)


def is_current(engine: Engine) -> bool:
    """Return True if the database schema is at the newest migration."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return ctx.get_current_revision() == head
