"""Notary's client rules in trustctl, in memory: repositories written by the test
publisher in ``tests/notaryrepo.py`` (independent of trustctl), served by a dict,
verified by :class:`trustctl.notary.updater.NotaryUpdater` at an injected time."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.notaryrepo import NotaryOwner, Signing, expires, key_object, meta, signed_file
from trustctl.errors import (
    RollbackError,
    StateCorruptError,
    TrustctlError,
    UntrustedSignatureError,
)
from trustctl.notary.pinning import NotaryPin, NotaryState
from trustctl.notary.updater import NotaryUpdater, TrustedNotary

GUN = "example.com/team/app"


class Repo:
    """A Notary repository served from memory (what notary-server would serve)."""

    def __init__(self, gun: str = GUN, root: Signing | None = None) -> None:
        self.timestamp = Signing.bare()
        self.owner = NotaryOwner(gun, self.timestamp.obj)
        if root is not None:
            self.owner.root = root
        self.files: dict[str, bytes] = {}
        self.root_raw = b""

    def set_root(self, version: int, *signers: Signing, keys: list[Signing] | None = None) -> None:
        raw = signed_file(
            self.owner.root_signed(version, root_keys=keys), *(signers or (self.owner.root,))
        )
        self.files["root.json"] = self.files[f"{version}.root.json"] = self.root_raw = raw

    def publish(self, version: int, roles: dict[str, bytes]) -> None:
        for name, raw in roles.items():
            self.files[f"{name}.{hashlib.sha256(raw).hexdigest()}.json"] = raw
        snapshot = self.owner.snapshot_file(version, {"root": self.root_raw, **roles})
        self.files[f"snapshot.{hashlib.sha256(snapshot).hexdigest()}.json"] = snapshot
        ts = {
            "_type": "Timestamp",
            "expires": expires(14),
            "meta": {"snapshot": meta(snapshot)},
            "version": version,
        }
        self.files["timestamp.json"] = signed_file(ts, self.timestamp)

    def targets(self, version: int, tags: dict[str, bytes], delegations: Any = ()) -> bytes:
        return signed_file(
            self.owner.targets_signed(version, tags, list(delegations)), self.owner.targets
        )

    def fetch(self, name: str, max_bytes: int) -> bytes | None:
        data = self.files.get(name)
        return data[: max_bytes + 1] if data is not None else None


def delegated(
    role: str, version: int, tags: dict[str, bytes], *signers: Signing, children: Any = ()
) -> bytes:
    owner = NotaryOwner(GUN, Signing.bare().obj)
    return signed_file(owner.targets_signed(version, tags, list(children), role=role), *signers)


def refresh(
    repo: Repo, state_dir: Path, pin: NotaryPin | None = None, now: datetime | None = None
) -> TrustedNotary:
    state = NotaryState(state_dir)
    if state.pin() is None:
        state.set_pin(pin or NotaryPin.by_cert_ids([repo.owner.root.keyid]))
    return NotaryUpdater(GUN, repo.fetch, state, now or datetime.now(UTC)).refresh()


def digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def test_a_key_listed_under_two_ids_counts_once_toward_a_threshold(tmp_path: Path) -> None:
    """A bare key and a certificate of the same key are two ids but one signer."""
    alice = ec.generate_private_key(ec.SECP256R1())
    bare, cert = Signing.bare(alice), Signing.cert("alice", alice)
    repo = Repo()
    repo.set_root(1)
    top = repo.owner.targets_signed(1, {}, [("targets/releases", [bare, cert], [""])])
    top["delegations"]["roles"][0]["threshold"] = 2
    releases = delegated("targets/releases", 1, {"v1": b"one"}, bare, cert)
    repo.publish(1, {"targets": signed_file(top, repo.owner.targets), "targets/releases": releases})
    trusted = refresh(repo, tmp_path)
    assert trusted.lookup("v1") is None
    assert "1 valid signature(s)" in trusted.failures["targets/releases"]


def test_delegation_paths_are_prefixes_cut_to_the_parents(tmp_path: Path) -> None:
    a, b = Signing.bare(), Signing.bare()
    repo = Repo()
    repo.set_root(1)
    role_a = delegated("targets/a", 1, {}, a, children=[("targets/a/b", [b], ["v1.2", "v2"])])
    role_b = delegated("targets/a/b", 1, {"v1.2.3": b"x", "v2.0": b"y"}, b)
    top = repo.targets(1, {}, [("targets/a", [a], ["v1"])])
    repo.publish(1, {"targets": top, "targets/a": role_a, "targets/a/b": role_b})
    trusted = refresh(repo, tmp_path)
    hit = trusted.lookup("v1.2.3")
    assert hit is not None and hit[0] == "targets/a/b"
    assert trusted.lookup("v2.0") is None  # "v2" is not under the parent's "v1"
    assert trusted.delegations["targets/a/b"].paths == ("v1.2",)


def test_targets_releases_is_preferred_over_targets(tmp_path: Path) -> None:
    alice = Signing.bare()
    repo = Repo()
    repo.set_root(1)
    top = repo.targets(1, {"v1": b"owner"}, [("targets/releases", [alice], [""])])
    releases = delegated("targets/releases", 1, {"v1": b"signer"}, alice)
    repo.publish(1, {"targets": top, "targets/releases": releases})
    role, entry = refresh(repo, tmp_path).lookup("v1") or ("", {})
    assert role == "targets/releases" and entry["length"] == len(b"signer")


def _ca_and_leaf(cn: str) -> tuple[bytes, Signing]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Team CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=300))
        .sign(ca_key, hashes.SHA256())
    )
    pem = leaf.public_bytes(serialization.Encoding.PEM)
    return ca.public_bytes(serialization.Encoding.PEM), Signing(
        leaf_key, key_object("ecdsa-x509", pem)
    )


def test_a_ca_bundle_pin_accepts_a_root_certificate_it_issued_and_nothing_else(
    tmp_path: Path,
) -> None:
    ca_pem, root = _ca_and_leaf(GUN)
    repo = Repo(root=root)
    repo.set_root(1)
    repo.publish(1, {"targets": repo.targets(1, {"v1": b"one"})})
    assert (
        refresh(repo, tmp_path / "ok", NotaryPin.by_ca(ca_pem, "ca.pem")).lookup("v1") is not None
    )
    other_ca, _ = _ca_and_leaf(GUN)
    with pytest.raises(UntrustedSignatureError, match="matches the pin"):
        refresh(repo, tmp_path / "other", NotaryPin.by_ca(other_ca, "other.pem"))


def test_a_new_root_must_be_signed_by_the_previous_root(tmp_path: Path) -> None:
    repo = Repo()
    old = repo.owner.root
    repo.set_root(1)
    repo.publish(1, {"targets": repo.targets(1, {"v1": b"one"})})
    refresh(repo, tmp_path, NotaryPin.tofu())  # the client trusts root v1
    new = Signing.cert(GUN)
    repo.owner.root = new
    repo.set_root(2, new, keys=[new])  # not signed by the old root certificate
    repo.publish(2, {"targets": repo.targets(2, {"v1": b"one"})})
    with pytest.raises(UntrustedSignatureError, match="not signed by the previous root"):
        refresh(repo, tmp_path)
    repo.set_root(2, old, new, keys=[new])  # signed by both: a rotation
    repo.publish(2, {"targets": repo.targets(2, {"v1": b"one"})})
    repo.set_root(3, new, keys=[new])
    repo.publish(3, {"targets": repo.targets(3, {"v1": b"one"})})
    trusted = refresh(repo, tmp_path)
    assert trusted.root.file.version == 3 and trusted.root_rotations == 2


def test_older_metadata_than_the_cached_state_is_a_rollback(tmp_path: Path) -> None:
    repo = Repo()
    repo.set_root(1)
    repo.publish(1, {"targets": repo.targets(1, {"v1": b"one"})})
    old = dict(repo.files)
    repo.publish(2, {"targets": repo.targets(2, {"v1": b"one", "v2": b"two"})})
    assert refresh(repo, tmp_path).lookup("v2") is not None
    repo.files = old
    with pytest.raises(RollbackError, match="rollback attack"):
        refresh(repo, tmp_path)


NOTARY_STATE_DAMAGE = {
    "state-json-deleted": lambda d: (d / "state.json").unlink(),
    "state-json-garbage": lambda d: (d / "state.json").write_bytes(b"{ not json"),
    "state-json-no-versions": lambda d: (d / "state.json").write_bytes(b'{"versions": [1]}'),
    "root-json-garbage": lambda d: (d / "root.json").write_bytes(b"garbage"),
    "verified-state-deleted": lambda d: [(d / n).unlink() for n in ("state.json", "root.json")],
}


@pytest.mark.parametrize("damage", list(NOTARY_STATE_DAMAGE), ids=list(NOTARY_STATE_DAMAGE))
def test_a_damaged_state_is_refused_not_read_as_no_versions(tmp_path: Path, damage: str) -> None:
    """Read as no versions, the older copy below would verify; re-pinning starts over."""
    repo = Repo()
    repo.set_root(1)
    repo.publish(1, {"targets": repo.targets(1, {"v1": b"one"})})
    old = dict(repo.files)
    repo.publish(2, {"targets": repo.targets(2, {"v1": b"one", "v2": b"two"})})
    new = dict(repo.files)
    assert refresh(repo, tmp_path).lookup("v2") is not None
    NOTARY_STATE_DAMAGE[damage](tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    repo.files = old
    with pytest.raises(StateCorruptError, match="rollback attack") as refused:
        refresh(repo, tmp_path)
    assert "--keyid" in (refused.value.hint or "")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    NotaryState(tmp_path).set_pin(NotaryPin.by_cert_ids([repo.owner.root.keyid]))
    repo.files = new
    assert refresh(repo, tmp_path).lookup("v2") is not None


def test_expired_targets_are_stale_at_the_injected_time(tmp_path: Path) -> None:
    repo = Repo()
    repo.set_root(1)
    repo.publish(1, {"targets": repo.targets(1, {"v1": b"one"})})
    with pytest.raises(TrustctlError, match="freeze attack") as e:
        refresh(repo, tmp_path, now=datetime.now(UTC) + timedelta(days=30))
    assert e.value.code == "STALE"


@pytest.mark.parametrize(
    ("notary_role", "expected"),
    [
        ("root", ("root", None)),
        ("targets", ("targets", None)),
        ("alice", ("delegation", "alice")),  # docker trust key generate alice
        ("targets/alice", ("delegation", "alice")),
        ("targets/releases", ("delegation", None)),
        ("delegation", ("delegation", None)),  # notary key import's default role
    ],
    ids=["root", "targets", "docker-signer", "notary-delegation", "releases", "default"],
)
def test_notary_key_roles_are_kept(notary_role: str, expected: tuple[str, str | None]) -> None:
    from trustctl.notary.keyfiles import trustctl_role

    assert trustctl_role(notary_role) == expected


def test_notary_and_docker_passphrase_variables() -> None:
    from trustctl.notary.keyfiles import notary_passphrase

    docker = {
        "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE": "dr",
        "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE": "dp",
    }
    assert notary_passphrase(docker, "root") == "dr"
    assert notary_passphrase(docker, "targets") == "dp"
    assert notary_passphrase(docker, "alice") == "dp"
    notary = {**docker, "NOTARY_TARGETS_PASSPHRASE": "nt", "NOTARY_DELEGATION_PASSPHRASE": "nd"}
    assert notary_passphrase(notary, "targets") == "nt"
    assert notary_passphrase(notary, "targets/releases") == "nd"
    assert notary_passphrase({}, "root") is None


def test_a_root_rotation_is_followed_after_the_old_root_certificate_expired(tmp_path: Path) -> None:
    """As Notary: the cached root is the previous root even when its certificate has
    expired since; the new root must be valid, and signed by the old and the new."""
    now = datetime.now(UTC)
    old = Signing.cert(GUN, not_after=now + timedelta(days=1))
    repo = Repo(root=old)
    repo.set_root(1)
    repo.publish(1, {"targets": repo.targets(1, {"v1": b"one"})})
    refresh(repo, tmp_path, NotaryPin.tofu(), now=now)
    later = now + timedelta(days=2)
    new = Signing.cert(GUN)
    repo.owner.root = new
    repo.set_root(2, old, new, keys=[new])
    repo.publish(2, {"targets": repo.targets(2, {"v1": b"one"})})
    trusted = refresh(repo, tmp_path, now=later)
    assert trusted.root.file.version == 2
    repo.set_root(3, new, keys=[old])  # a root whose only certificate has expired
    repo.publish(3, {"targets": repo.targets(3, {"v1": b"one"})})
    with pytest.raises(TrustctlError, match="expired") as e:
        refresh(repo, tmp_path, now=later)
    assert e.value.code == "STALE"


def test_the_migration_plan_carries_what_verified_and_says_why_it_leaves_the_rest(
    tmp_path: Path,
) -> None:
    from trustctl.notary.migrate import plan_migration

    alice, bob, carol, team = Signing.bare(), Signing.bare(), Signing.bare(), Signing.bare()
    repo = Repo()
    repo.set_root(1)
    top = repo.owner.targets_signed(
        1,
        {"v1": b"owner", "v2": b"owner too"},
        [
            ("targets/releases", [alice, bob], [""]),
            ("targets/alice", [alice], [""]),
            ("targets/bob", [bob], [""]),
            ("targets/carol", [carol], ["beta-"]),
            ("targets/team", [team], [""]),
        ],
    )
    top["delegations"]["roles"][0]["threshold"] = 2
    releases = delegated("targets/releases", 1, {"v3": b"signed by two"}, alice, bob)
    carol_role = delegated("targets/carol", 1, {"beta-1": b"b", "v9": b"outside her paths"}, carol)
    team_role = delegated(
        "targets/team", 1, {}, team, children=[("targets/team/ci", [carol], [""])]
    )
    ci = delegated("targets/team/ci", 1, {"v-ci": b"nested"}, carol)
    roles = {
        "targets": signed_file(top, repo.owner.targets),
        "targets/releases": releases,
        "targets/carol": carol_role,
        "targets/team": team_role,
        "targets/team/ci": ci,
    }
    repo.publish(1, roles)
    plan = plan_migration(refresh(repo, tmp_path), GUN)
    assert {t.tag: t.source_role for t in plan.tags} == {
        "v1": "targets",
        "v2": "targets",
        "v3": "targets/releases",
        "beta-1": "targets/carol",
        "v-ci": "targets/team/ci",
    }
    assert {t.tag: t.sha256 for t in plan.tags}["v3"] == digest(b"signed by two")
    assert {s.name: len(s.keys) for s in plan.signers} == {"alice": 1, "bob": 1, "team": 1}
    assert plan.threshold == 2
    skipped = {s.what: s.reason for s in plan.skipped}
    assert "outside the paths delegated" in skipped["tag v9 (targets/carol)"]
    assert "widen its rights" in skipped["delegation targets/carol"]
    assert "nested delegations" in skipped["delegation targets/team/ci"]
