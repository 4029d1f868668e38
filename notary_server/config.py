"""Server configuration: one frozen dataclass, read from a TOML file and the environment.

Every setting has a default that runs the embedded set-up (SQLite, 127.0.0.1). A
TOML file may set any of them as top-level keys; ``NOTARY_SERVER_<KEY>`` environment
variables override the file (``NOTARY_SERVER_DATABASE_URL=postgresql+psycopg://...``).
Everything is checked once at start-up, and a bad value stops the server with a
message naming the setting.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from notary_server.errors import ConfigError

if TYPE_CHECKING:  # imported where used: reading the configuration needs neither (nor tuf)
    from notary_server.publisher import Expiries
    from notary_server.validation import Limits
    from notary_signer.front import FrontLimits

__all__ = ["ConfigError", "ServerConfig", "load_config"]

ENV_PREFIX = "NOTARY_SERVER_"


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 4443
    tls_cert_file: str = ""
    tls_key_file: str = ""
    #: Serve plain HTTP. Only for a TLS-terminating proxy in front; warns at start.
    insecure_plain_http: bool = False
    #: Worker processes x threads each. Low-memory profile: workers = 1, threads = 16
    #: (measured: about 60% of the 2-worker memory, 45-70% of its reads/s).
    workers: int = 2
    threads: int = 8
    #: "front" (default: notary_signer.front, safe against slow and stalled clients),
    #: or "granian" / "gunicorn", which give every connection a worker thread while
    #: it reads the request: only behind a reverse proxy that buffers whole requests.
    wsgi_server: str = "front"
    #: Slow and stalled clients (the front only; docs/operations.md).
    handshake_timeout_seconds: float = 10
    header_timeout_seconds: float = 10
    body_timeout_seconds: float = 60
    write_timeout_seconds: float = 60
    keepalive_timeout_seconds: float = 30
    #: Open connections per client address and in all, per worker process (0: no
    #: per-address limit, e.g. behind a reverse proxy that limits them itself).
    max_connections_per_client: int = 64
    max_connections: int = 1024
    max_header_bytes: int = 16 * 1024

    database_url: str = "sqlite:///var/notary-server.db"

    signer_url: str = "https://127.0.0.1:7899"
    signer_ca_file: str = ""
    signer_client_cert: str = ""
    signer_client_key: str = ""
    signer_timeout_seconds: float = 5.0
    #: "ecdsa" or "ed25519" for server-held keys created by the signer.
    key_algorithm: str = "ecdsa"

    timestamp_expiry_hours: float = 24
    timestamp_renew_before_hours: float = 8
    snapshot_expiry_days: float = 7
    snapshot_renew_before_days: float = 3

    #: "none", or "token" for Docker registry token authentication.
    auth_type: str = "none"
    auth_realm: str = ""
    auth_service: str = ""
    auth_issuer: str = ""
    auth_root_cert_bundle: str = ""

    #: Only GUNs starting with one of these are accepted (empty: all).
    gun_prefixes: tuple[str, ...] = ()
    #: New repositories under these GUN prefixes speak Notary v1's dialect from the
    #: start, whatever client asks (see notary_server/notary/dialect.py).
    notary_dialect_prefixes: tuple[str, ...] = ()
    max_body_bytes: int = 64 * 1024 * 1024
    max_file_bytes: int = 32 * 1024 * 1024
    max_parts: int = 1024
    #: Uploads over 1 MiB parsed at once per worker process; more get 503 BUSY (memory
    #: bound: a parsed upload takes about 11x its size, see docs/operations.md).
    max_parallel_large_uploads: int = 2
    max_targets_per_role: int = 200_000
    max_delegations_per_role: int = 1024
    max_keys_per_role: int = 256
    max_json_depth: int = 16
    max_target_path_length: int = 1024

    #: Cache lifetime of "current" files (role.json); versioned files are immutable.
    current_max_age_seconds: int = 30
    #: How long a worker may reuse its answer to "which file is current" while no
    #: write has happened in this server (notary_server/generation.py); a replica on
    #: the same database sees another's write within this. 0: ask every time.
    current_recheck_seconds: float = 1.0
    changefeed_max_records: int = 1000
    log_level: str = "INFO"

    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def expiries(self) -> Expiries:
        from notary_server.publisher import Expiries

        return Expiries(
            snapshot=timedelta(days=self.snapshot_expiry_days),
            timestamp=timedelta(hours=self.timestamp_expiry_hours),
            snapshot_renew_before=timedelta(days=self.snapshot_renew_before_days),
            timestamp_renew_before=timedelta(hours=self.timestamp_renew_before_hours),
        )

    @property
    def limits(self) -> Limits:
        from notary_server.validation import Limits

        return Limits(
            max_targets_per_role=self.max_targets_per_role,
            max_delegations_per_role=self.max_delegations_per_role,
            max_keys_per_role=self.max_keys_per_role,
            max_json_depth=self.max_json_depth,
            max_target_path_length=self.max_target_path_length,
        )

    @property
    def front_limits(self) -> FrontLimits:
        from notary_signer.front import FrontLimits

        return FrontLimits(
            handshake_timeout=self.handshake_timeout_seconds,
            header_timeout=self.header_timeout_seconds,
            body_timeout=self.body_timeout_seconds,
            write_timeout=self.write_timeout_seconds,
            keepalive_timeout=self.keepalive_timeout_seconds,
            max_header_bytes=self.max_header_bytes,
            max_body_bytes=self.max_body_bytes,
            max_connections_per_client=self.max_connections_per_client,
            max_connections=self.max_connections,
        )

    def check(self) -> None:
        """Raise ConfigError naming the first bad setting."""
        if not 0 < self.port < 65536:
            raise ConfigError(f"port must be between 1 and 65535, got {self.port}")
        if self.timestamp_renew_before_hours >= self.timestamp_expiry_hours:
            raise ConfigError(
                "timestamp_renew_before_hours must be less than timestamp_expiry_hours"
            )
        if self.snapshot_renew_before_days >= self.snapshot_expiry_days:
            raise ConfigError("snapshot_renew_before_days must be less than snapshot_expiry_days")
        if self.timestamp_expiry_hours > 31 * 24:
            raise ConfigError(
                "timestamp_expiry_hours must be at most 744 (31 days, the signer's cap)"
            )
        if self.snapshot_expiry_days > 400:
            raise ConfigError("snapshot_expiry_days must be at most 400 (the signer's cap)")
        if self.key_algorithm not in ("ecdsa", "ed25519"):
            raise ConfigError(f"key_algorithm must be ecdsa or ed25519, got {self.key_algorithm!r}")
        if self.wsgi_server not in ("front", "granian", "gunicorn"):
            raise ConfigError(
                f"wsgi_server must be front, granian or gunicorn, got {self.wsgi_server!r}"
            )
        try:
            self.front_limits.check()
        except ValueError as e:
            raise ConfigError(str(e)) from e
        if self.auth_type not in ("none", "token"):
            raise ConfigError(f"auth_type must be none or token, got {self.auth_type!r}")
        if self.auth_type == "token":
            for name in ("auth_realm", "auth_service", "auth_issuer", "auth_root_cert_bundle"):
                if not getattr(self, name):
                    raise ConfigError(f"{name} is required when auth_type is token")
        if not 0 <= self.current_recheck_seconds <= 60:
            raise ConfigError("current_recheck_seconds must be between 0 and 60")
        for p in self.gun_prefixes:
            if not p.endswith("/"):
                raise ConfigError(f"gun_prefixes entries must end with '/': {p!r}")
        for name in (
            "max_body_bytes",
            "max_file_bytes",
            "max_parts",
            "max_parallel_large_uploads",
            "workers",
            "threads",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")

    def check_serving(self) -> None:
        """Checks that only matter when serving (files must exist)."""
        self.check()
        needed = ["signer_ca_file", "signer_client_cert", "signer_client_key"]
        if self.auth_type == "token":
            needed.append("auth_root_cert_bundle")
        if not self.insecure_plain_http:
            needed += ["tls_cert_file", "tls_key_file"]
        for name in needed:
            value = getattr(self, name)
            if not value:
                raise ConfigError(
                    f"{name} is not set (set it in the config file or {ENV_PREFIX}{name.upper()})"
                )
            if not Path(value).is_file():
                raise ConfigError(f"{name}: no such file {value!r}")


def _coerce(name: str, raw: Any, target: Any) -> Any:
    try:
        if target is bool:
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() in ("1", "true", "yes", "on"):
                return True
            if str(raw).lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if target is int:
            return int(raw)
        if target is float:
            return float(raw)
        if target == tuple[str, ...] or str(target) == "tuple[str, ...]":
            if isinstance(raw, str):
                return tuple(p.strip() for p in raw.split(",") if p.strip())
            return tuple(str(p) for p in raw)
        return str(raw)
    except (TypeError, ValueError) as e:
        raise ConfigError(
            f"{name}: cannot read {raw!r} as {getattr(target, '__name__', target)}"
        ) from e


def load_config(path: str | None = None, environ: Mapping[str, str] | None = None) -> ServerConfig:
    """Read a TOML file (optional), apply ``NOTARY_SERVER_*`` overrides, check.

    Raises:
        ConfigError: unreadable file, unknown key, or a bad value.
    """
    environ = environ if environ is not None else {}
    values: dict[str, Any] = {}
    if path:
        try:
            with open(path, "rb") as f:
                values.update(tomllib.load(f))
        except OSError as e:
            raise ConfigError(f"cannot read config file {path}: {e.strerror}") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {path} is not valid TOML: {e}") from e
    fields = {f.name: f for f in dataclasses.fields(ServerConfig) if f.name != "extra"}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown setting(s) in {path}: {', '.join(unknown)}")
    for name in fields:
        env = environ.get(ENV_PREFIX + name.upper())
        if env is not None:
            values[name] = env
    hints = {f.name: f.type for f in dataclasses.fields(ServerConfig)}
    types = {"int": int, "float": float, "bool": bool, "str": str}
    coerced = {
        name: _coerce(name, raw, types.get(str(hints[name]), hints[name]))
        for name, raw in values.items()
    }
    config = ServerConfig(**coerced)
    config.check()
    return config
