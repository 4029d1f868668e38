"""``notary-signer``: serve the signing service and administer its key database.

Commands::

    notary-signer serve [--config FILE]          HTTPS, mutual TLS required
    notary-signer migrate [--config FILE]        upgrade the database schema
    notary-signer reencrypt --to-alias NEW [--config FILE]
    notary-signer generate-dev-pki DIR           development CA and certificates

Settings come from the TOML file and ``NOTARY_SIGNER_*`` variables (see
:mod:`notary_signer.config`); passphrases only from ``NOTARY_SIGNER_<ALIAS>``.
Errors print one ``Error: ...`` line and a hint on stderr and exit 1; ``-v`` shows
debug logs and tracebacks.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from notary_signer.config import SignerConfig, check_alias, load_config
from notary_signer.errors import SignerError

__all__ = ["main"]

logger = logging.getLogger(__name__)

_config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML config file (default: $NOTARY_SIGNER_CONFIG, else defaults and env only).",
)


@click.group()
@click.option("-v", "--verbose", count=True, help="More logging (-v debug, -vv tracebacks).")
@click.pass_context
def main(ctx: click.Context, verbose: int) -> None:
    """The notary signing service: online TUF keys, encrypted at rest, mutual TLS only."""
    ctx.obj = {"verbose": verbose}


@main.command()
@_config_option
@click.pass_context
def serve(ctx: click.Context, config_path: str | None) -> None:
    """Serve the signing API over HTTPS, client certificates required."""
    from notary_signer.frontproc import serve as serve_front
    from notary_signer.serving import make_ssl_context

    with _errors(ctx):
        cfg = _load(ctx, config_path)
        cfg.check_serving(os.environ)
    _in_child(ctx, _prepare_database, ctx, cfg)
    with _errors(ctx):
        cert, key, ca = cfg.tls_cert_file, cfg.tls_key_file, cfg.client_ca_file
        assert cert and key and ca
        logger.info(
            "serving notary-signer on https://%s:%d (client certificates required)",
            cfg.host,
            cfg.port,
        )
        # The front reads every request whole, with deadlines and per-address
        # connection bounds, before a thread runs the app: a client stalled in its
        # TLS handshake or request costs a socket, never a worker thread.
        serve_front(
            _factory(cfg),
            host=cfg.host,
            port=cfg.port,
            ssl_factory=lambda: make_ssl_context(cert, key, ca, True),
            limits=cfg.front_limits,
            workers=cfg.workers,
            threads=cfg.threads,
            name="notary-signer",
            access_log=cfg.access_log,
        )


@main.command()
@_config_option
@click.pass_context
def migrate(ctx: click.Context, config_path: str | None) -> None:
    """Create or upgrade the signer database schema."""
    from notary_signer import db

    with _errors(ctx):
        cfg = _load(ctx, config_path)
        db.migrate(db.make_engine(cfg.database_url))
        click.echo("signer database is up to date", err=True)


@main.command()
@_config_option
@click.option("--to-alias", "new_alias", required=True, help="Alias to re-encrypt every key under.")
@click.pass_context
def reencrypt(ctx: click.Context, config_path: str | None, new_alias: str) -> None:
    """Re-encrypt every private key under the passphrase of NEW alias.

    The passphrases of the old aliases and of the new one must all be set
    (NOTARY_SIGNER_<ALIAS>). Afterwards set default_alias to the new alias.
    """
    from notary_signer import db
    from notary_signer.crypto import KeyEncryptor
    from notary_signer.keystore.sql import SQLKeyStore

    with _errors(ctx):
        cfg = _load(ctx, config_path)
        alias = check_alias(new_alias)
        engine = db.make_engine(cfg.database_url)
        if not db.is_current(engine):
            raise SignerError(
                "the signer database schema is not up to date",
                hint="run `notary-signer migrate` first",
            )
        store = SQLKeyStore(engine, KeyEncryptor(os.environ, alias=cfg.default_alias))
        count = store.reencrypt(alias)
        click.echo(f"re-encrypted {count} key(s) under alias {alias!r}")
        if cfg.default_alias != alias:
            click.echo(
                f"Hint: set default_alias = {alias!r} (or NOTARY_SIGNER_DEFAULT_ALIAS) and "
                "restart the signer, then remove the old passphrase variable",
                err=True,
            )


@main.command("import-notary")
@_config_option
@click.option(
    "--from",
    "source",
    required=True,
    metavar="DATABASE_URL",
    help="SQLAlchemy URL of the notary-signer 0.7.0 database (its private_keys table).",
)
@click.option("--dry-run", is_flag=True, help="Decrypt and check every key; write nothing.")
@click.pass_context
def import_notary(ctx: click.Context, config_path: str | None, source: str, dry_run: bool) -> None:
    """Import the keys of a notary-signer 0.7.0 database, re-encrypted under our alias.

    Each source key's passphrase comes from NOTARY_SIGNER_<ALIAS> (its
    passphrase_alias), as notary-signer reads it. All keys or none are imported;
    running it again imports nothing new.
    """
    from sqlalchemy import create_engine

    from notary_signer import db
    from notary_signer.crypto import KeyEncryptor
    from notary_signer.keystore.sql import SQLKeyStore
    from notary_signer.notary_import import import_keys, read_notary_keys

    with _errors(ctx):
        cfg = _load(ctx, config_path)
        source_engine = create_engine(source)
        try:
            keys = read_notary_keys(source_engine, os.environ)
        finally:
            source_engine.dispose()
        by_role: dict[str, int] = {}
        for k in keys:
            by_role[k.role] = by_role.get(k.role, 0) + 1
        summary = ", ".join(f"{n} {role}" for role, n in sorted(by_role.items())) or "none"
        guns = len({k.gun for k in keys})
        if dry_run:
            click.echo(
                f"would import {len(keys)} key(s) of {guns} repositories ({summary}); nothing written"
            )
            return
        engine = db.make_engine(cfg.database_url)
        if db.is_sqlite(cfg.database_url):
            db.migrate(engine)
        elif not db.is_current(engine):
            raise SignerError(
                "the signer database schema is not up to date",
                hint="run `notary-signer migrate` first",
            )
        store = SQLKeyStore(engine, KeyEncryptor(os.environ, alias=cfg.default_alias))
        count = import_keys(store, keys)
        click.echo(
            f"imported {count} new key(s) of {guns} repositories ({summary}); "
            f"{len(keys) - count} already present"
        )


@main.command("generate-dev-pki")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.pass_context
def generate_dev_pki(ctx: click.Context, directory: Path) -> None:
    """Create a DEVELOPMENT-ONLY CA and certificates in DIRECTORY (reused if valid)."""
    from notary_signer.devcerts import ensure_dev_pki

    with _errors(ctx):
        pki = ensure_dev_pki(directory)
        click.echo(str(pki.directory))
        click.echo("development PKI ready (never use it in production)", err=True)


def _prepare_database(ctx: click.Context, cfg: SignerConfig) -> None:
    """Migrate a SQLite database; refuse another one whose schema is not current."""
    from notary_signer import db

    with _errors(ctx):
        engine = db.make_engine(cfg.database_url)
        if db.is_sqlite(cfg.database_url):
            db.migrate(engine)
        elif not db.is_current(engine):
            raise SignerError(
                "the signer database schema is not up to date",
                hint="run `notary-signer migrate` first",
            )
        engine.dispose()


def _in_child(ctx: click.Context, target: Callable[..., None], *args: Any) -> None:
    """Run ``target(*args)`` in a forked child; exit with its status if it fails.

    The serving parent (gunicorn's arbiter) then never holds SQLAlchemy and alembic
    (about 25 MiB), which its forked worker would otherwise carry as well.
    """
    import multiprocessing

    def run() -> None:
        try:
            target(*args)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)

    child = multiprocessing.get_context("fork").Process(target=run, name=target.__name__)
    child.start()
    child.join()
    if child.exitcode:
        ctx.exit(child.exitcode if child.exitcode > 0 else 1)


def _load(ctx: click.Context, config_path: str | None) -> SignerConfig:
    cfg = load_config(config_path, os.environ)
    _setup_logging(ctx.obj["verbose"], cfg.log_level)
    return cfg


def _factory(cfg: SignerConfig) -> Callable[[], Any]:
    def build() -> Any:
        from notary_signer.app import create_app

        return create_app(cfg, environ=os.environ)

    return build


def _setup_logging(verbose: int, level: str) -> None:
    """Configure our package logger only (never the root logger)."""
    package = logging.getLogger("notary_signer")
    if not package.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        package.addHandler(handler)
    package.setLevel(logging.DEBUG if verbose else getattr(logging, level.upper()))


@contextmanager
def _errors(ctx: click.Context) -> Iterator[None]:
    """Turn our errors into one ``Error:`` line plus a hint, exit status 1."""
    try:
        yield
    except Exception as e:
        if not isinstance(e, (SignerError, OSError, ValueError)) and not _is_sqlalchemy_error(e):
            raise
        if ctx.obj["verbose"] >= 2:
            raise
        if isinstance(e, SignerError):
            message = e.message
        elif _is_sqlalchemy_error(e):
            # the driver's message, never the URL (it may hold a password)
            message = f"database error: {getattr(e, 'orig', None) or type(e).__name__}"
        else:
            message = str(e)
        click.echo(f"Error: {message}", err=True)
        hint = getattr(e, "hint", None)
        if hint:
            click.echo(f"Hint: {hint}", err=True)
        ctx.exit(1)


def _is_sqlalchemy_error(e: BaseException) -> bool:
    # Checked without importing SQLAlchemy: if it is not loaded, e is not one of its errors.
    exc = sys.modules.get("sqlalchemy.exc")
    return exc is not None and isinstance(e, exc.SQLAlchemyError)
