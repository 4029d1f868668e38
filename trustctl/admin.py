"""Repository set-up and key rotation.

* :func:`initialize` creates a repository: a root key and a targets key (encrypted in
  the local key store), root v1 listing them plus the server-held timestamp and
  snapshot keys (so snapshot and timestamp are server-managed), an empty targets
  v1; it publishes both and pins root v1 locally.
* :func:`rotation_changes` turns ``key rotate GUN ROLE`` into changes for the
  :class:`~trustctl.repo.Publisher`:

  - ``root``: a new root key; the next root is signed by the old *and* the new key;
  - ``targets``: a new targets key listed in the next root, and targets re-signed
    with it in the same upload;
  - ``timestamp`` / ``snapshot``: the server makes a new key (``POST .../<role>.key``)
    and the next root lists it; the server switches once that root is published;
  - a signer (``alice`` or ``targets/alice``): the signer's keys in ``targets`` are
    replaced by a new key (generated here, or ``--key PUB``), and when this machine
    holds the new private key, ``targets/releases`` is re-signed with it in the same
    upload so no signed tag stops verifying.

Example:
    >>> initialize("127.0.0.1:5000/app", client=client, keystore=keys, trust=store)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from securesystemslib.signer import Key
from tuf.api.metadata import Metadata, Root, Targets

from notary_signer.canonical import compute_keyid
from trustctl.changes import Change
from trustctl.client import ServerClient
from trustctl.edits import EXPIRY_DAYS, RELEASES, check_signer_name, signer_roles
from trustctl.errors import (
    AlreadyInitializedError,
    MissingKeyError,
    ServerRejectedError,
    UsageError,
)
from trustctl.keys import KeyStore
from trustctl.layout import DEFAULT_HASH_BINS, bit_length_for, owner_bins, owner_bins_delegations
from trustctl.truststore import TrustStore
from trustctl.tufview import TrustedRepository

__all__ = ["BINS_KEY_NAME", "ROTATABLE", "InitResult", "initialize", "key_doc", "rotation_changes"]

logger = logging.getLogger(__name__)

ROTATABLE = ("root", "targets", "timestamp", "snapshot")
BINS_KEY_NAME = "bins"


@dataclass(frozen=True)
class InitResult:
    gun: str
    root_keyid: str
    targets_keyid: str
    timestamp_keyid: str
    snapshot_keyid: str
    root_bytes: bytes
    bins_keyid: str | None = None
    hash_bins: int = 0


def key_doc(key: Key) -> dict[str, object]:
    """A key as stored in a change: its TUF dict plus ``keyid``."""
    return {"keyid": key.keyid, **key.to_dict()}


def _server_key(client: ServerClient, gun: str, role: str, *, rotate: bool = False) -> Key:
    key = client.rotate_server_key(gun, role) if rotate else client.server_key(gun, role)
    if compute_keyid(key) != key.keyid:
        raise ServerRejectedError(
            f"the trust server's {role} key id {key.keyid[:12]}… is not the id of the key it sent; "
            "this may be an attack"
        )
    return key


def initialize(
    gun: str,
    *,
    client: ServerClient,
    keystore: KeyStore,
    trust: TrustStore,
    root_keyid: str | None = None,
    algorithm: str = "ecdsa",
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    hash_bins: int = DEFAULT_HASH_BINS,
    targets_keyid: str | None = None,
    pin_source: str = "trustctl init",
) -> InitResult:
    """Create ``gun`` on the trust server and pin its root locally (with the root and
    targets keys ``root_keyid`` and ``targets_keyid`` from the key store, else new ones).

    With ``hash_bins`` (a power of two; 0 for the flat layout) ``targets`` delegates
    succinct hash bins to a new *bins key* (see :mod:`trustctl.layout`); the bins are
    created with their first tag.

    Raises:
        AlreadyInitializedError: the server already has a root for ``gun``.
        MissingKeyError: ``root_keyid`` is not in the key store.
        TrustctlError: network, server or passphrase errors.
    """
    bit_length = bit_length_for(hash_bins)
    if client.get_file(gun, "1.root.json") is not None:
        raise AlreadyInitializedError(
            f"{gun} already has trust data on the server",
            hint=f"to verify it, pin its root (`trustctl trust pin {gun} ROOT_FILE`); to start over, "
            f"`trustctl delete {gun} --remote` first",
        )
    timestamp_key = _server_key(client, gun, "timestamp")
    snapshot_key = _server_key(client, gun, "snapshot")
    if root_keyid:
        root_info = keystore.find(root_keyid)
        if root_info.role != "root":
            raise MissingKeyError(
                f"key {root_info.keyid[:12]}… is a {root_info.role} key, not a root key"
            )
    else:
        root_info = keystore.generate("root", gun=gun, algorithm=algorithm)
    if targets_keyid:
        targets_info = keystore.find(targets_keyid)
        if targets_info.role != "targets":
            raise MissingKeyError(
                f"key {targets_info.keyid[:12]}… is a {targets_info.role} key, not a targets key"
            )
    else:
        targets_info = keystore.generate("targets", gun=gun, algorithm=algorithm)
    now = clock()
    root = Root(expires=now + timedelta(days=EXPIRY_DAYS["root"]), consistent_snapshot=True)
    root.add_key(root_info.public, "root")
    root.add_key(targets_info.public, "targets")
    root.add_key(snapshot_key, "snapshot")
    root.add_key(timestamp_key, "timestamp")
    root_md = Metadata(root)
    root_md.sign(keystore.signer(root_info.keyid, purpose=f"new repository {gun}"))
    targets = Targets(expires=now + timedelta(days=EXPIRY_DAYS["targets"]))
    bins_info = None
    if bit_length:
        bins_info = keystore.generate("targets", gun=gun, name=BINS_KEY_NAME, algorithm=algorithm)
        targets.delegations = owner_bins_delegations([bins_info.public], [], bit_length)
    targets_md = Metadata(targets)
    targets_md.sign(keystore.signer(targets_info.keyid, purpose=f"new repository {gun}"))
    root_bytes = root_md.to_bytes()
    client.publish(gun, {"root": root_bytes, "targets": targets_md.to_bytes()})
    trust.pin(gun, root_bytes, source=pin_source)
    return InitResult(
        gun,
        root_info.keyid,
        targets_info.keyid,
        timestamp_key.keyid,
        snapshot_key.keyid,
        root_bytes,
        bins_info.keyid if bins_info is not None else None,
        2**bit_length if bit_length else 0,
    )


@dataclass(frozen=True)
class Rotation:
    """What ``key rotate`` will publish, and what is left for others to do."""

    role: str
    changes: list[Change]
    new_keyid: str
    old_keyids: tuple[str, ...]
    next_steps: tuple[str, ...] = ()


def rotation_changes(
    gun: str,
    role: str,
    *,
    repo: TrustedRepository,
    client: ServerClient,
    keystore: KeyStore,
    new_public: Key | None = None,
    algorithm: str = "ecdsa",
) -> Rotation:
    """Prepare the rotation of ``role``'s keys (see module docstring).

    Raises:
        UsageError: unknown role or signer, or ``--key`` where it makes no sense.
    """
    repo.refresh()
    root = repo.root.signed
    if role == BINS_KEY_NAME:
        owner = owner_bins(repo.targets.signed)
        if owner is None:
            raise UsageError(f"{gun} keeps its tags in targets (no hash bins): rotate `targets`")
        if new_public is not None and keystore.get(new_public.keyid) is None:
            raise MissingKeyError("the new bins key must be in your key store (import it first)")
        key = (
            new_public
            or keystore.generate("targets", gun=gun, name=BINS_KEY_NAME, algorithm=algorithm).public
        )
        change = Change("rotate-bins", "rotate-bins", {"key": key_doc(key)})
        return Rotation(BINS_KEY_NAME, [change], key.keyid, owner.keyids)
    if role in ROTATABLE:
        old = tuple(root.roles[role].keyids)
        if role in ("timestamp", "snapshot"):
            if new_public is not None:
                raise UsageError(
                    f"the {role} key is held by the trust server: --key cannot be used for it"
                )
            key = _server_key(client, gun, role, rotate=True)
        elif new_public is not None:
            if keystore.get(new_public.keyid) is None:
                raise MissingKeyError(
                    f"the new {role} key must be in your key store (import it first)"
                )
            key = new_public
        else:
            key = keystore.generate(role, gun=gun, algorithm=algorithm).public
        action = "rotate-root" if role == "root" else "rotate-top"
        change = Change(f"rotate-{role}", action, {"role": role, "key": key_doc(key)})
        return Rotation(role, [change], key.keyid, old)
    name = role.split("/", 1)[1] if role.startswith("targets/") else role
    check_signer_name(name)
    owners = signer_roles(repo.targets.signed)
    if name not in owners:
        raise UsageError(
            f"{role!r} is neither a top-level role ({', '.join(ROTATABLE)}) nor a signer of {gun}",
            hint=f"see `trustctl signer list {gun}`",
        )
    key = new_public or keystore.generate("delegation", name=name, algorithm=algorithm).public
    old = tuple(k for k in owners[name] if k != key.keyid)
    add = Change(
        "rotate-add", "add-signer", {"name": name, "keys": [key_doc(key)], "threshold": None}
    )
    remove = Change(
        "rotate-remove",
        "remove-signer",
        {
            "name": name,
            "keyids": None,
            "except_keyids": [key.keyid],
            "threshold": None,
            "force": False,
        },
    )
    if keystore.get(key.keyid) is not None:
        # We hold the new private key: swap the keys and re-sign targets/releases with
        # it in one upload, so no signed tag ever stops verifying.
        witness = Change("rotate-witness", "witness", {"role": RELEASES, "if_published": True})
        return Rotation(f"targets/{name}", [add, remove, witness], key.keyid, old)
    if repo.version_of(RELEASES) == 0:
        return Rotation(f"targets/{name}", [add, remove], key.keyid, old)
    # The signer holds the new key: add it now, and finish once they re-signed with it.
    steps = (
        f"{name} re-signs with the new key: `trustctl witness {gun}` (on {name}'s machine)",
        "then remove the old key(s): "
        + " ".join(f"`trustctl signer remove {name} {gun} --key {k}`" for k in old),
    )
    return Rotation(f"targets/{name}", [add], key.keyid, old, steps)
