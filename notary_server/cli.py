"""``notary-server``: serve, migrate, renew, and the one-command development set-up.

``notary-server dev`` is the embedded default: it generates a development CA and
certificates into ``keys/``, starts ``notary-signer`` on 127.0.0.1:7899 (mutual TLS)
and the trust server on 127.0.0.1:4443 (HTTPS), both on SQLite files under ``var/``,
and stops both on Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn

import click

from notary_server.config import ConfigError, ServerConfig, load_config
from notary_server.wsgi import configure_logging

__all__ = ["main"]

logger = logging.getLogger("notary_server")


def _fail(message: str, hint: str | None = None) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    if hint:
        click.echo(f"Hint: {hint}", err=True)
    sys.exit(2)


def _load(path: str | None) -> ServerConfig:
    try:
        return load_config(path, os.environ)
    except ConfigError as e:
        _fail(str(e), "see docs/operations.md for every setting")


@click.group()
@click.version_option(package_name="notary-tuf")
def main() -> None:
    """The TUF trust server for container images."""


@main.command()
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="TOML configuration file."
)
@click.option("--no-migrate", is_flag=True, help="Do not upgrade the database schema at start-up.")
def serve(config_path: str | None, no_migrate: bool) -> None:
    """Serve the trust server's HTTP API."""
    config = _load(config_path)
    try:
        config.check_serving()
    except ConfigError as e:
        _fail(
            str(e), "run `notary-server dev` for a development set-up with generated certificates"
        )
    configure_logging(config.log_level)
    if config.insecure_plain_http:
        logger.warning(
            "insecure_plain_http is on: serving plain HTTP; only do this behind a TLS-terminating proxy"
        )
    if not no_migrate:
        _migrate_in_child(config.database_url)
    logger.info(
        "trust server listening on %s:%d (%s)", config.host, config.port, config.wsgi_server
    )
    from notary_server.wsgi import serve as run

    run(config, config_path)


def _migrate(url: str) -> None:
    from notary_server.storage.sql import migrate

    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        migrate(url)
    except Exception as e:  # noqa: BLE001 - any database failure stops start-up with one line
        _fail(f"cannot upgrade the database schema at {_redact(url)}: {e}")


def _migrate_in_child(url: str) -> None:
    """Run ``_migrate`` in a forked child and wait for it.

    alembic and the schema machinery (about 25 MiB) then never live in the serving
    parent, whose pages every forked worker would otherwise carry. A failure exits
    with the child's status after the child printed its one-line error.
    """
    import multiprocessing

    fork = multiprocessing.get_context("fork")
    child = fork.Process(target=_migrate, args=(url,), name="migrate")
    child.start()
    child.join()
    if child.exitcode:
        sys.exit(child.exitcode if child.exitcode > 0 else 1)


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
def migrate(config_path: str | None) -> None:
    """Create or upgrade the database schema."""
    config = _load(config_path)
    _migrate(config.database_url)
    click.echo(f"database schema is up to date: {_redact(config.database_url)}")


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
def renew(config_path: str | None) -> None:
    """Renew every repository's timestamp and snapshot inside their renewal window.

    Reads renew on demand already; run this from cron so that rarely read
    repositories stay fresh for caches and mirrors too.
    """
    config = _load(config_path)
    configure_logging(config.log_level)
    from notary_server.app import build_service
    from notary_server.errors import NotaryError

    try:
        service = build_service(config)
        guns = service.store.guns()
    except (NotaryError, ConfigError) as e:
        _fail(
            f"cannot list repositories in {_redact(config.database_url)}: {e}",
            "check database_url and that the database is running",
        )
    except Exception as e:  # noqa: BLE001 - a driver's own error: one line, no traceback
        _fail(f"cannot open the database {_redact(config.database_url)}: {type(e).__name__}: {e}")
    renewed = 0
    for gun in guns:
        try:
            renewed += service.renew(gun)
        except Exception as e:  # noqa: BLE001 - keep going; report each failure
            click.echo(f"Error: {gun}: {e}", err=True)
    click.echo(f"renewed {renewed} repositories")


@main.command("import-notary")
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
@click.option(
    "--from",
    "source",
    required=True,
    metavar="DATABASE_URL",
    help="SQLAlchemy URL of the notary-server 0.7.0 database (its tuf_files table).",
)
@click.option("--dry-run", is_flag=True, help="Check everything and report; write nothing.")
def import_notary(config_path: str | None, source: str, dry_run: bool) -> None:
    """Import every repository of a notary-server 0.7.0 database, byte for byte.

    Run `notary-signer import-notary` first so that the server-held keys are there.
    Checks the whole source before writing; a second run writes nothing new.
    """
    config = _load(config_path)
    configure_logging(config.log_level)
    from sqlalchemy import create_engine
    from sqlalchemy.exc import SQLAlchemyError

    from notary_server.notary.migrate import ImportRefused, apply, read_notary_files
    from notary_server.storage.sql import open_store

    try:
        engine = create_engine(source)
        try:
            plan = read_notary_files(engine)
        finally:
            engine.dispose()
        if not dry_run:
            _migrate(config.database_url)
        store = open_store(config.database_url)
        todo = plan.check_against(store)
        new = sum(len(u) for u in todo.values())
        if dry_run:
            click.echo(
                f"would import {new} of {plan.count} file(s) of {len(plan.files)} repositories "
                f"({len(todo)} with new files); nothing written"
            )
            return
        written = apply(store, todo)
    except ImportRefused as e:
        _fail(
            f"refused: {e}; nothing was written",
            "fix the source database or import into an empty one",
        )
    except SQLAlchemyError as e:
        _fail(f"database error: {getattr(e, 'orig', None) or type(e).__name__}")
    click.echo(
        f"imported {written} of {plan.count} file(s) of {len(plan.files)} repositories; "
        f"{plan.count - written} already present"
    )


@main.command()
@click.option("--keys-dir", default="keys", show_default=True, type=click.Path(file_okay=False))
@click.option("--var-dir", default="var", show_default=True, type=click.Path(file_okay=False))
@click.option("--port", default=4443, show_default=True)
@click.option("--signer-port", default=7899, show_default=True)
def dev(keys_dir: str, var_dir: str, port: int, signer_port: int) -> None:
    """Run signer and server on 127.0.0.1 with generated development certificates."""
    from notary_signer.devcerts import ensure_dev_pki

    keys, var = Path(keys_dir).resolve(), Path(var_dir).resolve()
    try:
        var.mkdir(parents=True, exist_ok=True)
        pki = ensure_dev_pki(keys)
        passphrase = os.environ.get("NOTARY_SIGNER_DEFAULT") or _dev_passphrase(
            keys / "dev-signer-passphrase"
        )
    except OSError as e:
        _fail(
            f"cannot write the development keys and databases: {e.strerror or e}: {e.filename or keys}",
            "choose writable directories with --keys-dir and --var-dir",
        )
    # each process gets only its own settings and secrets: the trust server never
    # sees the signer's passphrase, the signer never sees the server's settings
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NOTARY_SIGNER_", "NOTARY_SERVER_"))
    }
    signer_env = {
        **base,
        **{k: v for k, v in os.environ.items() if k.startswith("NOTARY_SIGNER_")},
        "NOTARY_SIGNER_DEFAULT": passphrase,
    }
    server_env = {**base, **{k: v for k, v in os.environ.items() if k.startswith("NOTARY_SERVER_")}}
    signer_toml = var / "dev-signer.toml"
    signer_toml.write_text(
        f'host = "127.0.0.1"\nport = {signer_port}\n'
        f'tls_cert_file = "{pki.signer_cert}"\ntls_key_file = "{pki.signer_key}"\n'
        f'client_ca_file = "{pki.ca_cert}"\ndatabase_url = "sqlite:///{var / "notary-signer.db"}"\n'
    )
    server_toml = var / "dev-server.toml"
    server_toml.write_text(
        f'host = "127.0.0.1"\nport = {port}\n'
        f'tls_cert_file = "{pki.server_cert}"\ntls_key_file = "{pki.server_key}"\n'
        f'database_url = "sqlite:///{var / "notary-server.db"}"\n'
        f'signer_url = "https://127.0.0.1:{signer_port}"\nsigner_ca_file = "{pki.ca_cert}"\n'
        f'signer_client_cert = "{pki.client_cert}"\nsigner_client_key = "{pki.client_key}"\n'
    )
    python = sys.executable
    procs = [
        subprocess.Popen(
            [python, "-m", "notary_signer", "serve", "--config", str(signer_toml)], env=signer_env
        ),
        subprocess.Popen(
            [python, "-m", "notary_server", "serve", "--config", str(server_toml)], env=server_env
        ),
    ]
    click.echo(
        f"\nnotary-signer: https://127.0.0.1:{signer_port} (mutual TLS)\n"
        f"notary-server: https://127.0.0.1:{port}\n"
        f"CA certificate: {pki.ca_cert}\n\n"
        f"Point a client at it:\n"
        f"  export TRUSTCTL_SERVER=https://127.0.0.1:{port} TRUSTCTL_TLS_CA={pki.ca_cert}\n"
        f"  curl --cacert {pki.ca_cert} https://127.0.0.1:{port}/_notary_server/health\n\n"
        "Press Ctrl-C to stop both.\n",
        err=True,
    )
    _supervise(procs)


def _dev_passphrase(path: Path) -> str:
    """A random passphrase for the development signer, kept (mode 0600) across restarts."""
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value


def _supervise(procs: list[subprocess.Popen[bytes]]) -> None:
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping and all(p.poll() is None for p in procs):
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    failed = [p for p in procs if p.returncode not in (0, -signal.SIGTERM, None)]
    if failed and not stopping:
        _fail("a service stopped unexpectedly; see its messages above")
