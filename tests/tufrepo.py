"""A repository owner for tests: holds root/targets/delegation keys and builds uploads.

It plays the part a publishing client plays, with python-tuf's Metadata API and
nothing of the server's code, so that the server is judged by an independent party.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from securesystemslib.signer import CryptoSigner, Key
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    Root,
    Snapshot,
    TargetFile,
    Targets,
)

MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"


def days(n: float, now: datetime | None = None) -> datetime:
    return (now or datetime.now(UTC)) + timedelta(days=n)


def target_for(tag: str, content: bytes | None = None) -> TargetFile:
    content = content if content is not None else f"manifest of {tag}".encode()
    return TargetFile(
        length=len(content),
        hashes={"sha256": hashlib.sha256(content).hexdigest()},
        path=tag,
        unrecognized_fields={"custom": {"mediaType": MEDIA_TYPE}},
    )


@dataclass
class Owner:
    """The owner of one repository (GUN) and everything they sign."""

    timestamp_key: Key
    snapshot_key: Key | None = None
    root_signers: list[CryptoSigner] = field(
        default_factory=lambda: [CryptoSigner.generate_ecdsa()]
    )
    targets_signer: CryptoSigner = field(default_factory=CryptoSigner.generate_ecdsa)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        self.root = Root(expires=days(365, self.now), consistent_snapshot=True)
        for s in self.root_signers:
            self.root.add_key(s.public_key, "root")
        self.root.roles["root"].threshold = len(self.root_signers)
        self.root.add_key(self.targets_signer.public_key, "targets")
        self.root.add_key(self.timestamp_key, "timestamp")
        if self.snapshot_key is not None:
            self.root.add_key(self.snapshot_key, "snapshot")
        self.targets = Targets(expires=days(365, self.now))
        self.delegated: dict[str, Targets] = {}
        self.delegated_signers: dict[str, list[CryptoSigner]] = {}
        self.previous_root_signers: list[CryptoSigner] = []

    # --- signing --------------------------------------------------------------

    def root_bytes(self, extra_signers: list[CryptoSigner] | None = None) -> bytes:
        md = Metadata(self.root)
        for s in [*self.previous_root_signers, *self.root_signers, *(extra_signers or [])]:
            md.sign(s, append=True)
        return md.to_bytes()

    def targets_bytes(self, signers: list[CryptoSigner] | None = None) -> bytes:
        md = Metadata(self.targets)
        for s in signers if signers is not None else [self.targets_signer]:
            md.sign(s, append=True)
        return md.to_bytes()

    def delegated_bytes(self, role: str, signers: list[CryptoSigner] | None = None) -> bytes:
        md = Metadata(self.delegated[role])
        for s in signers if signers is not None else self.delegated_signers[role]:
            md.sign(s, append=True)
        return md.to_bytes()

    def snapshot_bytes(self, snapshot: Snapshot, signer: CryptoSigner) -> bytes:
        md = Metadata(snapshot)
        md.sign(signer)
        return md.to_bytes()

    # --- editing ---------------------------------------------------------------

    def add_tag(self, tag: str, content: bytes | None = None, role: str = "targets") -> TargetFile:
        tf = target_for(tag, content)
        signed = self.targets if role == "targets" else self.delegated[role]
        signed.targets[tag] = tf
        signed.version += 1
        return tf

    def delegate(
        self,
        role: str,
        signers: list[CryptoSigner],
        *,
        threshold: int = 1,
        paths: list[str] | None = None,
    ) -> None:
        if self.targets.delegations is None:
            self.targets.delegations = Delegations(keys={}, roles={})
        assert self.targets.delegations.roles is not None
        self.targets.delegations.roles[role] = DelegatedRole(
            name=role, keyids=[], threshold=threshold, terminating=False, paths=paths or ["*"]
        )
        for s in signers:
            self.targets.add_key(s.public_key, role)
        self.targets.version += 1
        self.delegated[role] = Targets(version=1, expires=days(365, self.now))
        self.delegated_signers[role] = signers

    def rotate_root(self, new_signers: list[CryptoSigner]) -> None:
        """Replace the root keys; the next root is signed by old and new keys."""
        self.previous_root_signers = self.root_signers
        for s in self.root_signers:
            self.root.revoke_key(s.public_key.keyid, "root")
        for s in new_signers:
            self.root.add_key(s.public_key, "root")
        self.root.roles["root"].threshold = len(new_signers)
        self.root_signers = new_signers
        self.root.version += 1

    def rotate_targets(self, new_signer: CryptoSigner) -> None:
        self.root.revoke_key(self.targets_signer.public_key.keyid, "targets")
        self.root.add_key(new_signer.public_key, "targets")
        self.targets_signer = new_signer
        self.root.version += 1
        self.targets.version += 1
        self.previous_root_signers = []

    def rotate_timestamp(self, new_key: Key) -> None:
        self.root.revoke_key(self.timestamp_key.keyid, "timestamp")
        self.root.add_key(new_key, "timestamp")
        self.timestamp_key = new_key
        self.root.version += 1
        self.previous_root_signers = []

    def bump_root(self) -> None:
        self.previous_root_signers = []
        self.root.version += 1
