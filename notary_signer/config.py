"""Signer configuration: a TOML file overridden by ``NOTARY_SIGNER_<KEY>`` variables.

Settings are a fixed, known set (the fields of :class:`SignerConfig`); each can be
set in the file (top-level ``key = value``) or in the environment as
``NOTARY_SIGNER_<KEY>`` (``NOTARY_SIGNER_PORT=7900``), the environment winning.
Every other ``NOTARY_SIGNER_<NAME>`` variable is a passphrase for the alias
``<name>``; an alias whose variable would collide with a setting is rejected.
Passphrases never come from the file.

Relative paths in the file are resolved against the file's directory; relative
paths from the environment against the working directory. Mutual TLS cannot be
turned off: :meth:`SignerConfig.check_serving` refuses to serve without a
certificate, its key and a client CA.

Example (``signer.toml``)::

    host = "127.0.0.1"
    port = 7899
    tls_cert_file = "keys/signer.pem"
    tls_key_file = "keys/signer-key.pem"
    client_ca_file = "keys/dev-ca.pem"
    database_url = "sqlite:///var/notary-signer.db"
    default_alias = "default"     # passphrase in NOTARY_SIGNER_DEFAULT
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from notary_signer.crypto import ENV_PREFIX, env_var_for_alias, normalize_alias
from notary_signer.errors import ConfigError, PassphraseError
from notary_signer.keystore._material import ALGORITHMS

if TYPE_CHECKING:
    from notary_signer.front import FrontLimits

__all__ = [
    "CONFIG_ENV_VAR",
    "MAX_REQUEST_BYTES",
    "SignerConfig",
    "check_alias",
    "load_config",
    "setting_env_var",
]

logger = logging.getLogger(__name__)

#: Names the config file when ``--config`` is not given.
CONFIG_ENV_VAR = ENV_PREFIX + "CONFIG"
_PATH_KEYS = ("tls_cert_file", "tls_key_file", "client_ca_file")
_LOG_LEVELS = ("debug", "info", "warning", "error")
#: Largest request body the signer reads: a base64 payload of policy.MAX_PAYLOAD_BYTES fits.
MAX_REQUEST_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class SignerConfig:
    """Validated signer settings (defaults are for local development).

    Attributes:
        host: Address to listen on.
        port: TCP port.
        tls_cert_file: PEM certificate (chain) the signer presents.
        tls_key_file: PEM private key of that certificate.
        client_ca_file: PEM CA bundle client certificates must chain to.
        database_url: SQLAlchemy URL; relative SQLite paths are relative to the cwd.
        default_alias: Passphrase alias new keys are encrypted under.
        default_algorithm: Key algorithm when a request names none.
        workers: gunicorn worker processes.
        threads: Threads per worker.
        log_level: debug, info, warning or error.
        access_log: Log every request (off by default).
        handshake_timeout_seconds, header_timeout_seconds, body_timeout_seconds,
        write_timeout_seconds, keepalive_timeout_seconds: deadlines for each client
            (:class:`notary_signer.front.FrontLimits`).
        max_connections_per_client, max_connections: open connections per client
            address (0: no limit) and in all, per worker process.
    """

    host: str = "127.0.0.1"
    port: int = 7899
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    client_ca_file: str | None = None
    database_url: str = "sqlite:///var/notary-signer.db"
    default_alias: str = "default"
    default_algorithm: str = "ecdsa"
    workers: int = 2
    threads: int = 8
    log_level: str = "info"
    access_log: bool = False
    handshake_timeout_seconds: int = 10
    header_timeout_seconds: int = 10
    body_timeout_seconds: int = 30
    write_timeout_seconds: int = 30
    keepalive_timeout_seconds: int = 120
    max_connections_per_client: int = 64
    max_connections: int = 1024

    @property
    def front_limits(self) -> FrontLimits:
        """Deadlines and connection bounds for :mod:`notary_signer.front`."""
        from notary_signer.front import FrontLimits

        return FrontLimits(
            handshake_timeout=self.handshake_timeout_seconds,
            header_timeout=self.header_timeout_seconds,
            body_timeout=self.body_timeout_seconds,
            write_timeout=self.write_timeout_seconds,
            keepalive_timeout=self.keepalive_timeout_seconds,
            max_body_bytes=MAX_REQUEST_BYTES,
            max_connections_per_client=self.max_connections_per_client,
            max_connections=self.max_connections,
        )

    def __post_init__(self) -> None:
        _validate(self)

    def check_serving(self, environ: Mapping[str, str]) -> None:
        """Check what serving needs: TLS files readable, default passphrase set.

        Raises:
            ConfigError: a setting is missing, a file unreadable, the passphrase unset.
        """
        for name in _PATH_KEYS:
            value = getattr(self, name)
            if not value:
                raise ConfigError(
                    f"missing setting {name}: mutual TLS is mandatory",
                    hint=f"set {name} in the config file or {setting_env_var(name)}",
                    setting=name,
                )
            _check_readable(name, value)
        env_var = env_var_for_alias(self.default_alias)  # alias validated at construction
        if not environ.get(env_var):
            raise ConfigError(
                f"passphrase for alias {self.default_alias!r} is not set: set {env_var}",
                hint=f"export {env_var} in the signer's environment (never in the config file)",
                variable=env_var,
            )


def setting_env_var(name: str) -> str:
    """Return the environment variable overriding setting ``name``."""
    return ENV_PREFIX + name.upper()


def check_alias(alias: str) -> str:
    """Return ``alias`` normalised if it can name a passphrase.

    Raises:
        ConfigError: invalid name, or its variable would collide with a setting.
    """
    try:
        norm = normalize_alias(alias)
    except PassphraseError as e:
        raise ConfigError(e.message) from None
    reserved = {setting_env_var(n) for n in _fields()} | {CONFIG_ENV_VAR}
    if env_var_for_alias(norm) in reserved:
        raise ConfigError(f"alias {norm!r} is reserved: {env_var_for_alias(norm)} names a setting")
    return norm


def load_config(path: str | None, environ: Mapping[str, str]) -> SignerConfig:
    """Load settings from ``path`` (or ``$NOTARY_SIGNER_CONFIG``) and ``environ``.

    Args:
        path: TOML file, or None for environment and defaults only.
        environ: Environment (``os.environ`` at the edge).

    Raises:
        ConfigError: unreadable or invalid file, unknown setting, bad value.
    """
    path = path or environ.get(CONFIG_ENV_VAR) or None
    values: dict[str, Any] = {}
    if path:
        values.update(_read_file(Path(path)))
    for name in _fields():
        raw = environ.get(setting_env_var(name))
        if raw is not None and raw != "":
            values[name] = _coerce(name, raw, source=setting_env_var(name))
    try:
        return SignerConfig(**values)
    except TypeError as e:  # a value of the wrong type in the file
        raise ConfigError(f"invalid configuration: {e}") from None


def _fields() -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(SignerConfig)}


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(
            f"cannot read config file {path}: {e.strerror or e}", hint="check --config"
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    fields = _fields()
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown setting(s) in {path}: {', '.join(unknown)}",
            hint=f"known settings: {', '.join(fields)}",
        )
    for name in _PATH_KEYS:
        if isinstance(data.get(name), str) and data[name]:
            data[name] = str(path.parent / Path(data[name]).expanduser())
    return data


def _coerce(name: str, raw: str, *, source: str) -> Any:
    kind = _fields()[name].type
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{source} must be an integer, got {raw!r}") from None
    if kind == "bool":
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{source} must be true or false, got {raw!r}")
    return raw


def _validate(cfg: SignerConfig) -> None:
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        expected = {"int": int, "bool": bool}.get(str(f.type), str)
        if value is None and "None" in str(f.type):
            continue
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ConfigError(f"setting {f.name} must be {expected.__name__}, got {value!r}")
    if not 0 < cfg.port < 65536:
        raise ConfigError(f"setting port must be 1-65535, got {cfg.port}")
    if cfg.workers < 1 or cfg.threads < 1:
        raise ConfigError(f"workers and threads must be >= 1, got {cfg.workers}/{cfg.threads}")
    if (
        min(
            cfg.handshake_timeout_seconds,
            cfg.header_timeout_seconds,
            cfg.body_timeout_seconds,
            cfg.write_timeout_seconds,
            cfg.keepalive_timeout_seconds,
        )
        < 1
    ):
        raise ConfigError("every *_timeout_seconds setting must be at least 1")
    if cfg.max_connections < 1 or cfg.max_connections_per_client < 0:
        raise ConfigError("max_connections must be >= 1 and max_connections_per_client >= 0")
    if cfg.default_algorithm not in ALGORITHMS:
        raise ConfigError(
            f"setting default_algorithm must be one of {', '.join(ALGORITHMS)}, "
            f"got {cfg.default_algorithm!r}"
        )
    if cfg.log_level not in _LOG_LEVELS:
        raise ConfigError(f"setting log_level must be one of {', '.join(_LOG_LEVELS)}")
    check_alias(cfg.default_alias)


def _check_readable(name: str, value: str) -> None:
    if not os.access(value, os.R_OK) or not Path(value).is_file():
        raise ConfigError(
            f"setting {name}: file {value} does not exist or is not readable",
            setting=name,
        )
