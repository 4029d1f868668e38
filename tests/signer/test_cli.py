"""The notary-signer command: one-line errors, migrate, reencrypt, generate-dev-pki."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from notary_signer.cli import main
from notary_signer.crypto import KeyEncryptor
from notary_signer.db import is_current, make_engine, migrate
from notary_signer.keystore.sql import SQLKeyStore
from tests.secrets import remember

from .conftest import FAST_KDF, GUN


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _clean_env(**extra: str) -> dict[str, str | None]:
    """Unset every NOTARY_SIGNER_* the runner might inherit, then set ``extra``."""
    import os

    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("NOTARY_SIGNER_")}
    env.update(extra)
    return env


def test_serve_refuses_without_mutual_tls(runner: CliRunner, tmp_path: Path) -> None:
    env = _clean_env(NOTARY_SIGNER_DATABASE_URL=f"sqlite:///{tmp_path}/s.db")
    result = runner.invoke(main, ["serve"], env=env)
    assert result.exit_code == 1
    assert (
        result.stderr.splitlines()[0]
        == "Error: missing setting tls_cert_file: mutual TLS is mandatory"
    )
    assert "Hint:" in result.stderr and "Traceback" not in result.output


def test_unreadable_config_is_one_line(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(
        main, ["migrate", "--config", str(tmp_path / "nope.toml")], env=_clean_env()
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: cannot read config file")


def test_database_errors_are_one_line(runner: CliRunner, tmp_path: Path) -> None:
    env = _clean_env(NOTARY_SIGNER_DATABASE_URL=f"sqlite:///{tmp_path}")  # a directory
    result = runner.invoke(main, ["migrate"], env=env)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: database error: unable to open database file")


def test_migrate_and_reencrypt(runner: CliRunner, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/var/signer.db"
    result = runner.invoke(main, ["migrate"], env=_clean_env(NOTARY_SIGNER_DATABASE_URL=url))
    assert result.exit_code == 0, result.output
    engine = make_engine(url)
    assert is_current(engine)
    old = {"NOTARY_SIGNER_DEFAULT": remember("old passphrase")}
    store = SQLKeyStore(engine, KeyEncryptor(old, kdf=FAST_KDF))
    key = store.create(GUN, "timestamp", "ecdsa")

    env = _clean_env(NOTARY_SIGNER_DATABASE_URL=url, NOTARY_SIGNER_DEFAULT="old passphrase")
    result = runner.invoke(main, ["reencrypt", "--to-alias", "q3"], env=env)
    assert result.exit_code == 1 and "NOTARY_SIGNER_Q3" in result.stderr  # new passphrase missing

    env["NOTARY_SIGNER_Q3"] = remember("new passphrase")
    result = runner.invoke(main, ["reencrypt", "--to-alias", "q3"], env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout == "re-encrypted 1 key(s) under alias 'q3'\n"
    assert "default_alias" in result.stderr

    only_new = SQLKeyStore(engine, KeyEncryptor({"NOTARY_SIGNER_Q3": "new passphrase"}, alias="q3"))
    only_new.signer(key.keyid).sign(b"x")
    engine.dispose()


def test_reencrypt_refuses_reserved_alias(runner: CliRunner, tmp_path: Path) -> None:
    env = _clean_env(NOTARY_SIGNER_DATABASE_URL=f"sqlite:///{tmp_path}/s.db")
    result = runner.invoke(main, ["reencrypt", "--to-alias", "port"], env=env)
    assert result.exit_code == 1 and "reserved" in result.stderr


def test_reencrypt_needs_migrated_database(runner: CliRunner, tmp_path: Path) -> None:
    env = _clean_env(NOTARY_SIGNER_DATABASE_URL=f"sqlite:///{tmp_path}/s.db", NOTARY_SIGNER_X="p")
    result = runner.invoke(main, ["reencrypt", "--to-alias", "x"], env=env)
    assert result.exit_code == 1 and "notary-signer migrate" in result.stderr


def test_generate_dev_pki(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["generate-dev-pki", str(tmp_path / "keys")])
    assert result.exit_code == 0
    assert (tmp_path / "keys" / "server-client.pem").exists()
    assert "never use it in production" in result.stderr


def test_migrate_is_idempotent(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/s.db")
    migrate(engine)
    migrate(engine)
    assert is_current(engine)
    engine.dispose()
