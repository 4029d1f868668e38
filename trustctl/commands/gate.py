"""``gate serve|manifest``: the Kubernetes admission webhook that admits only signed images."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime
from pathlib import Path

import click

from trustctl.cli import TrustctlCommand, TrustctlGroup, pass_ctx
from trustctl.context import TrustContext
from trustctl.errors import ConfigError, UsageError

__all__ = ["register"]


@click.group("gate", cls=TrustctlGroup)
def gate_group() -> None:
    """The deploy gate: a Kubernetes admission webhook that admits only signed images."""


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise UsageError(f"--listen {text!r}: give HOST:PORT (e.g. 0.0.0.0:8443)")
    return host.strip("[]"), int(port)


@gate_group.command("serve", cls=TrustctlCommand)
@click.option(
    "--policy",
    "policy_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The policy file (YAML), reloaded when it changes.",
)
@click.option("--listen", default="0.0.0.0:8443", show_default=True, help="HOST:PORT to serve on.")
@click.option(
    "--tls-cert", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--tls-key", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--workers",
    default=32,
    show_default=True,
    type=click.IntRange(1, 1024),
    help="Verifications running at once.",
)
@click.option(
    "--timeout-seconds",
    default=10.0,
    show_default=True,
    type=click.FloatRange(3, 30),
    help="The webhook configurations' timeoutSeconds: requests are answered 2 s "
    "before it, and the trust server's retries stop well within it.",
)
@click.option(
    "--threads",
    default=128,
    show_default=True,
    type=click.IntRange(4, 4096),
    help="Threads answering requests (a request waiting for a verification holds one).",
)
@click.option(
    "--cache-seconds",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0, 300),
    help="How long a verified image is answered from memory (never past the expiry "
    "of the metadata it rests on; 0: ask the trust server every time).",
)
@click.option(
    "--negative-cache-seconds",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0, 10),
    help="How long a definitive denial (not signed, wrong digest) is remembered.",
)
@click.option(
    "--offline-bundle-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Offline mode: decide from the bundle imported here (`gate import-bundle`); "
    "no connection to any trust server.",
)
@pass_ctx
def serve_cmd(
    ctx: TrustContext,
    policy_path: Path,
    listen: str,
    tls_cert: Path,
    tls_key: Path,
    workers: int,
    timeout_seconds: float,
    threads: int,
    cache_seconds: float,
    negative_cache_seconds: float,
    offline_bundle_dir: Path | None,
) -> None:
    """Serve POST /validate and POST /mutate (AdmissionReview v1) over TLS.

    Roots are pinned in the trust dir (`trustctl --trust-dir DIR trust pin GUN root.json`);
    the policy names the trust servers and which images each vouches for.
    """
    from trustctl.api import Verifier
    from trustctl.gate.bundle import BundleStore, BundleTransport, bundle_state, near_stale_warning
    from trustctl.gate.cache import VerdictCache
    from trustctl.gate.decide import Budget, Gate, PolicyFile
    from trustctl.gate.policy import PolicyError, Server
    from trustctl.gate.serve import GateServer
    from trustctl.gate.state import RootPins, StateGuard, offline_check

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    host, port = _listen(listen)
    try:
        policy = PolicyFile(policy_path)
    except PolicyError as e:
        raise ConfigError(
            str(e), hint="fix the policy file; see docs/gate.md (Policy reference)"
        ) from None
    trust_dir = ctx.settings.trust_dir

    bundle = BundleStore(offline_bundle_dir, []) if offline_bundle_dir else None
    offline = BundleTransport(bundle) if bundle else None

    def verifier_for(server: Server, budget: Budget) -> Verifier:
        return Verifier(server.url, trust_dir=trust_dir, tls_ca=server.tls_ca, transport=offline,
                        timeout=budget.read_timeout, retry_budget=budget.retry)  # fmt: skip

    gate = Gate(
        policy,
        verifier_for,
        timeout_seconds=timeout_seconds,
        workers=workers,
        state_check=offline_check(StateGuard(trust_dir), bundle, lambda: datetime.now(UTC)),
        cache=VerdictCache(ttl=cache_seconds, negative_ttl=negative_cache_seconds),
        pin=RootPins(trust_dir).ensure,
    )
    if bundle is not None:
        gate.freshness_warning = near_stale_warning(bundle, lambda: datetime.now(UTC))
        gate.metrics.bundle = bundle_state(bundle)
    try:
        srv = GateServer(gate, host, port, tls_cert, tls_key, threads=threads)
    except OSError as e:
        raise ConfigError(f"cannot serve on {listen}: {e}") from None
    ctx.printer.message(
        f"trustctl gate: serving https://{host}:{srv.port} (/validate, /mutate, /metrics)"
    )
    try:
        srv.serve_forever()
    finally:
        gate.close()


@gate_group.command("manifest", cls=TrustctlCommand)
@click.option("--namespace", default="trustctl-gate", show_default=True)
@click.option("--image", required=True, help="The gate's own image (pin it by digest).")
@click.option(
    "--ca-bundle",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM of the CA that signed the gate's serving certificate.",
)
@click.option("--replicas", default=2, show_default=True, type=click.IntRange(1, 100))
@pass_ctx
def manifest_cmd(
    ctx: TrustContext, namespace: str, image: str, ca_bundle: Path, replicas: int
) -> None:
    """Print the Deployment, Service and both webhook configurations (YAML)."""
    import yaml

    from trustctl.gate.manifest import manifest

    pem = ca_bundle.read_bytes()
    if b"BEGIN CERTIFICATE" not in pem:
        raise UsageError(f"{ca_bundle} holds no PEM certificate")
    docs = manifest(
        namespace=namespace,
        image=image,
        ca_bundle=base64.b64encode(pem).decode(),
        replicas=replicas,
    )
    click.echo(yaml.safe_dump_all(docs, sort_keys=False), nl=False)


@gate_group.command("import-bundle", cls=TrustctlCommand)
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--bundle-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The gate's bundle directory (its --offline-bundle-dir).",
)
@click.option(
    "--bundle-key",
    "keys",
    multiple=True,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A pinned bundle public key (Ed25519 PEM; repeat for several).",
)
@pass_ctx
def import_bundle_cmd(
    ctx: TrustContext, bundle: Path, bundle_dir: Path, keys: tuple[Path, ...]
) -> None:
    """Check a bundle whole and make it the one in force (atomically)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from trustctl.gate.bundle import BundleStore

    pins = []
    for path in keys:
        try:
            key = load_pem_public_key(path.read_bytes())
        except ValueError as e:
            raise UsageError(f"cannot load the bundle key {path}: {e}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise UsageError(f"{path} is not an Ed25519 public key")
        pins.append(key)
    manifest = BundleStore(bundle_dir, pins).import_bundle(bundle.read_bytes())
    ctx.printer.message(
        f"imported bundle sequence {manifest.sequence} ({len(manifest.files)} files), "
        f"fresh until {manifest.not_after:%Y-%m-%dT%H:%M:%SZ}"
    )


def register(group: click.Group) -> None:
    group.add_command(gate_group)
