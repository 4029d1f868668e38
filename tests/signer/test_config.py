"""Configuration: TOML file, NOTARY_SIGNER_* overrides, start-up validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from notary_signer.config import SignerConfig, check_alias, load_config
from notary_signer.errors import ConfigError


def test_defaults() -> None:
    cfg = load_config(None, {})
    assert (cfg.host, cfg.port, cfg.default_alias, cfg.default_algorithm) == (
        "127.0.0.1",
        7899,
        "default",
        "ecdsa",
    )
    assert cfg.database_url == "sqlite:///var/notary-signer.db"


def test_file_then_env_wins(tmp_path: Path) -> None:
    path = tmp_path / "signer.toml"
    path.write_text('port = 8000\nworkers = 3\ntls_cert_file = "certs/signer.pem"\n')
    cfg = load_config(str(path), {"NOTARY_SIGNER_PORT": "9000", "NOTARY_SIGNER_ACCESS_LOG": "yes"})
    assert (cfg.port, cfg.workers, cfg.access_log) == (9000, 3, True)
    assert cfg.tls_cert_file == str(tmp_path / "certs" / "signer.pem")  # relative to the file


def test_config_path_from_env(tmp_path: Path) -> None:
    path = tmp_path / "signer.toml"
    path.write_text('host = "0.0.0.0"\n')
    assert load_config(None, {"NOTARY_SIGNER_CONFIG": str(path)}).host == "0.0.0.0"


def test_passphrase_variables_are_not_settings() -> None:
    cfg = load_config(None, {"NOTARY_SIGNER_DEFAULT": "secret", "NOTARY_SIGNER_Q3": "other"})
    assert "secret" not in repr(cfg)


@pytest.mark.parametrize(
    ("content", "env", "message"),
    [
        ("port = 'x'\n", {}, "port must be int"),
        ("colour = 'blue'\n", {}, "unknown setting.*colour"),
        ("port = \n", {}, "not valid TOML"),
        ("", {"NOTARY_SIGNER_PORT": "http"}, "NOTARY_SIGNER_PORT must be an integer"),
        ("", {"NOTARY_SIGNER_PORT": "70000"}, "1-65535"),
        ("", {"NOTARY_SIGNER_DEFAULT_ALGORITHM": "rsa"}, "default_algorithm"),
        ("", {"NOTARY_SIGNER_DEFAULT_ALIAS": "database_url"}, "reserved"),
        ("", {"NOTARY_SIGNER_DEFAULT_ALIAS": "no spaces"}, "invalid passphrase alias"),
        ("", {"NOTARY_SIGNER_ACCESS_LOG": "maybe"}, "true or false"),
    ],
    ids=[
        "file type",
        "unknown key",
        "bad toml",
        "env int",
        "port range",
        "algorithm",
        "reserved alias",
        "bad alias",
        "env bool",
    ],
)
def test_invalid_settings_are_named(
    tmp_path: Path, content: str, env: dict[str, str], message: str
) -> None:
    path = tmp_path / "signer.toml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_config(str(path), env)


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file .*missing.toml"):
        load_config(str(tmp_path / "missing.toml"), {})


def test_serving_needs_all_of_mutual_tls(tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    env = {"NOTARY_SIGNER_DEFAULT": "pw"}
    with pytest.raises(ConfigError, match="missing setting tls_cert_file") as exc:
        SignerConfig().check_serving(env)
    assert exc.value.hint and "NOTARY_SIGNER_TLS_CERT_FILE" in exc.value.hint
    partial = SignerConfig(tls_cert_file=str(cert), tls_key_file=str(cert))
    with pytest.raises(ConfigError, match="client_ca_file"):
        partial.check_serving(env)
    gone = SignerConfig(tls_cert_file=str(cert), tls_key_file=str(cert), client_ca_file="/nope.pem")
    with pytest.raises(ConfigError, match="/nope.pem does not exist"):
        gone.check_serving(env)
    full = SignerConfig(tls_cert_file=str(cert), tls_key_file=str(cert), client_ca_file=str(cert))
    full.check_serving(env)
    with pytest.raises(ConfigError, match="NOTARY_SIGNER_DEFAULT"):
        full.check_serving({})


def test_check_alias() -> None:
    assert check_alias("Q3_2026") == "q3_2026"
    with pytest.raises(ConfigError):
        check_alias("port")
