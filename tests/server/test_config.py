"""Configuration: TOML file, NOTARY_SERVER_* overrides, start-up checks with clear messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from notary_server.cli import main
from notary_server.config import ConfigError, load_config


def test_file_then_environment(tmp_path: Path) -> None:
    toml = tmp_path / "server.toml"
    toml.write_text('port = 5443\ngun_prefixes = ["reg.example/"]\ntimestamp_expiry_hours = 12\n')
    config = load_config(
        str(toml), {"NOTARY_SERVER_PORT": "6443", "NOTARY_SERVER_INSECURE_PLAIN_HTTP": "yes"}
    )
    assert config.port == 6443
    assert config.gun_prefixes == ("reg.example/",)
    assert config.timestamp_expiry_hours == 12
    assert config.insecure_plain_http is True


@pytest.mark.parametrize(
    "toml, environ, message",
    [
        ("prot = 1\n", {}, "unknown setting(s)"),
        ("", {"NOTARY_SERVER_PORT": "many"}, "port: cannot read 'many'"),
        ("", {"NOTARY_SERVER_PORT": "70000"}, "port must be between"),
        ('gun_prefixes = ["docker.io"]\n', {}, "must end with '/'"),
        ("timestamp_renew_before_hours = 30\n", {}, "timestamp_renew_before_hours must be less"),
        ("port = [\n", {}, "not valid TOML"),
    ],
    ids=[
        "unknown key",
        "not a number",
        "out of range",
        "prefix without slash",
        "window too long",
        "bad TOML",
    ],
)
def test_bad_settings_are_named(
    tmp_path: Path, toml: str, environ: dict[str, str], message: str
) -> None:
    path = tmp_path / "server.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=None) as e:
        load_config(str(path), environ)
    assert message in str(e.value)


def test_serve_without_certificates_says_what_is_missing(tmp_path: Path, monkeypatch) -> None:
    for var in [v for v in __import__("os").environ if v.startswith("NOTARY_SERVER_")]:
        monkeypatch.delenv(var)
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 2
    assert "Error: signer_ca_file is not set" in result.output
    assert "Traceback" not in result.output


def test_missing_config_file_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--config", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert result.output.startswith("Error: cannot read config file")


def test_serving_parent_loads_no_app_modules() -> None:
    # the serving parent (the front's, granian's or gunicorn's) runs notary_server.cli and wsgi.serve;
    # every worker it forks carries what it imported, so it must not load the app.
    import subprocess
    import sys

    code = (
        "import sys, notary_server.cli, notary_server.wsgi, notary_signer.serving, notary_signer.front;"
        "from notary_server.config import ServerConfig; c = ServerConfig(); c.check();"
        "heavy = ('flask', 'sqlalchemy', 'alembic', 'tuf', 'securesystemslib', 'jwt', 'gunicorn');"
        "print(' '.join(sorted(m for m in heavy if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_settings_for_online_files_build_on_demand() -> None:
    config = load_config(None, {"NOTARY_SERVER_TIMESTAMP_EXPIRY_HOURS": "12"})
    assert config.expiries.timestamp.total_seconds() == 12 * 3600
    assert config.limits.max_json_depth == config.max_json_depth
