"""Attacks on the deployer, as named scenarios: stale (freeze), rollback, tampering,
endless data, a compromised server's online keys, a signer going around the threshold.

The trust server is the real app in process; the attacker sits in the middle
(:class:`~tests.trustctl.support.Mitm`) or holds the server's online keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from tuf.api.metadata import Metadata, MetaFile, Snapshot, Timestamp

from tests.trustctl.conftest import Image
from tests.trustctl.support import (
    SERVER_URL,
    FlaskTransport,
    Mitm,
    Person,
    Run,
    ServerClock,
    make_server,
)
from trustctl.api import Verifier
from trustctl.errors import EXIT_TRUST, StaleMetadataError

MakePerson = Callable[..., Person]
Push = Callable[..., Image]


def ok(run: Run) -> None:
    assert run.exit_code == 0, str(run)


def setup(
    person: MakePerson, push: Push, tmp_path: Path, mitm: Mitm
) -> tuple[Image, Person, Person]:
    image = push()
    owner = person("owner")
    ok(owner.run("init", image.gun))
    ok(owner.run("sign", image.ref))
    ok(owner.run("trust", "export", image.gun, "-o", str(tmp_path / "root.json")))
    deployer = person("deployer", server_transport=mitm)
    ok(deployer.run("trust", "pin", image.gun, str(tmp_path / "root.json")))
    return image, owner, deployer


def test_stale_trust_data_is_refused_as_a_possible_freeze_attack(
    person: MakePerson,
    push: Push,
    tmp_path: Path,
    server: FlaskTransport,
    server_clock: ServerClock,
) -> None:
    image, owner, deployer = setup(person, push, tmp_path, Mitm(server))
    server_clock.offset = -timedelta(
        days=2
    )  # from now on the server signs timestamps that expired a day ago
    # Any publish makes it sign a new timestamp.
    ok(
        owner.run(
            "sign",
            f"{image.gun}:v2",
            "--digest",
            image.digest,
            "--size",
            str(image.size),
            "--media-type",
            image.media_type,
        )
    )
    run = deployer.run("--json", "verify", image.ref)
    assert run.exit_code == EXIT_TRUST
    error = run.json["error"]
    assert error["code"] == "STALE"
    assert "stale" in error["message"] and "freeze attack" in error["message"]


def test_replayed_older_timestamp_is_refused_as_a_rollback(
    person: MakePerson, push: Push, tmp_path: Path, server: FlaskTransport
) -> None:
    mitm = Mitm(server)
    image, owner, deployer = setup(person, push, tmp_path, mitm)
    ok(deployer.run("verify", image.ref))
    old_timestamp = mitm.recorded["timestamp.json"][-1]
    ok(
        owner.run(
            "sign",
            f"{image.gun}:v2",
            "--digest",
            image.digest,
            "--size",
            str(image.size),
            "--media-type",
            image.media_type,
        )
    )
    ok(deployer.run("verify", image.ref))  # the deployer has now seen the newer state
    mitm.replay("/timestamp.json", old_timestamp)
    run = deployer.run("verify", image.ref)
    assert run.exit_code == EXIT_TRUST
    assert "rollback attack" in run.stderr


def test_compromised_online_keys_cannot_roll_targets_back(
    person: MakePerson, push: Push, tmp_path: Path, server: FlaskTransport
) -> None:
    mitm = Mitm(server)
    image, owner, deployer = setup(person, push, tmp_path, mitm)
    seen = deployer.run("--json", "inspect", image.ref).json
    holder = seen["tags"][0]["role"]  # a hash bin (or targets, in the flat layout)
    signed_version = {r["role"]: r["version"] for r in seen["roles"]}[holder]
    ok(owner.run("revoke", image.ref))  # the next version no longer carries the tag
    gone = deployer.run("verify", image.ref)
    assert (
        gone.exit_code == EXIT_TRUST and "not signed" in gone.stderr
    )  # the deployer saw the revocation
    # The attacker holds the server's snapshot and timestamp keys and points a new
    # snapshot back at the version that still signed the (revoked) tag.
    keystore = server.server.keystore
    current_ts = Metadata[Timestamp].from_bytes(mitm.recorded["timestamp.json"][-1])
    snap_name = f"{current_ts.signed.snapshot_meta.version}.snapshot.json"
    snapshot = Metadata[Snapshot].from_bytes(
        server.request("GET", f"https://x/v2/{image.gun}/_trust/tuf/{snap_name}").data
    )
    snapshot.signed.meta[f"{holder}.json"] = MetaFile(version=signed_version)
    snapshot.signed.version += 1
    snapshot.sign(keystore.signer(next(iter(snapshot.signatures))))
    current_ts.signed.snapshot_meta = MetaFile(version=snapshot.signed.version)
    current_ts.signed.version += 1
    current_ts.sign(keystore.signer(next(iter(current_ts.signatures))))
    mitm.replay("/timestamp.json", current_ts.to_bytes())
    mitm.replay(f"/{snapshot.signed.version}.snapshot.json", snapshot.to_bytes())
    run = deployer.run("verify", image.ref)
    assert run.exit_code == EXIT_TRUST
    assert "rollback attack" in run.stderr


@pytest.mark.parametrize("role_file", ["targets.json", "root.json"])
def test_tampered_metadata_is_refused(
    person: MakePerson, push: Push, tmp_path: Path, server: FlaskTransport, role_file: str
) -> None:
    mitm = Mitm(server)
    image, _owner, deployer = setup(person, push, tmp_path, mitm)
    ok(deployer.run("verify", image.ref))
    deployer.trust_dir.joinpath("tuf", image.gun, "metadata").mkdir(exist_ok=True)
    if role_file == "targets.json":
        # the role that carries the tag: its hash bin (targets itself in the flat layout)
        seen = deployer.run("--json", "inspect", image.ref).json
        holder = seen["tags"][0]["role"]
        version = {r["role"]: r["version"] for r in seen["roles"]}[holder]
        name = f"{version}.{quote(holder, safe='')}.json"
        raw = server.request("GET", f"https://x/v2/{image.gun}/_trust/tuf/{name}").data
        evil = "sha256:" + "0" * 64
        tampered = raw.replace(
            image.digest[7:].encode(), evil[7:].encode()
        )  # same length, other digest
        assert tampered != raw and len(tampered) == len(raw)
        for f in deployer.trust_dir.joinpath("tuf", image.gun, "metadata").glob("*.json"):
            # make the client download the targets roles again (timestamp and snapshot
            # stay: without them the trusted state is refused as STATE_CORRUPT)
            if f.name not in ("root.json", "timestamp.json", "snapshot.json"):
                f.unlink()
        mitm.replay(f"/{name}", tampered)
    else:
        doc = json.loads(
            server.request("GET", f"https://x/v2/{image.gun}/_trust/tuf/1.root.json").data
        )
        doc["signed"]["version"] = 2
        mitm.replay("/2.root.json", json.dumps(doc).encode())
    run = deployer.run("verify", image.ref)
    assert run.exit_code == EXIT_TRUST, str(run)
    assert any(
        s in run.stderr for s in ("may be forged", "may have been tampered", "may be an attack")
    ), str(run)


def test_endless_data_is_cut_off(
    person: MakePerson, push: Push, tmp_path: Path, server: FlaskTransport
) -> None:
    mitm = Mitm(server)
    image, _owner, deployer = setup(person, push, tmp_path, mitm)
    mitm.replay("/timestamp.json", b"{" + b" " * 100_000 + b"}")
    run = deployer.run("verify", image.ref)
    assert run.exit_code == EXIT_TRUST
    assert "endless-data attack" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize("layout", ["hash bins", "flat"])
def test_a_signer_cannot_go_around_the_threshold(
    person: MakePerson, push: Push, tmp_path: Path, server: FlaskTransport, layout: str
) -> None:
    """Signer roles (targets/<name>) delegate no paths: one key cannot publish tags alone."""
    from datetime import UTC, datetime

    from tuf.api.metadata import SuccinctRoles, TargetFile, Targets

    from trustctl.client import ServerClient
    from trustctl.errors import ServerRejectedError
    from trustctl.keys import KeyStore, PassphraseSource

    image = push()
    owner = person("owner")
    ok(owner.run("init", image.gun, *(["--hash-bins", "0"] if layout == "flat" else [])))
    alice = person("alice")
    ok(alice.run("key", "generate", "alice", "--dir", str(tmp_path)))
    ok(alice.run("key", "generate", "alice2", "--dir", str(tmp_path)))
    ok(owner.run("signer", "add", "alice", "--key", str(tmp_path / "alice.pub"), image.gun))
    ok(
        owner.run(
            "signer",
            "add",
            "alice2",
            "--key",
            str(tmp_path / "alice2.pub"),
            image.gun,
            "--threshold",
            "2",
        )
    )
    keys = KeyStore(alice.trust_dir / "private", PassphraseSource(alice.env))
    alice_key = next(k for k in keys.all_keys() if k.name == "alice")
    sneaky = Metadata(Targets(expires=datetime.now(UTC) + timedelta(days=30)))
    sneaky.signed.targets[image.tag] = TargetFile(
        image.size, {"sha256": image.digest[7:]}, image.tag
    )
    sneaky.sign(keys.signer(alice_key.keyid))
    with pytest.raises(ServerRejectedError, match="outside the paths"):
        ServerClient("https://notary.test", server).publish(
            image.gun, {"targets/alice": sneaky.to_bytes()}
        )
    signers_role = (
        "targets/releases"
        if layout == "flat"
        else SuccinctRoles([], 1, 8, "targets/releases/bins").get_role_for_target(image.tag)
    )
    with pytest.raises(ServerRejectedError, match="1 of the 2"):
        ServerClient("https://notary.test", server).publish(
            image.gun, {signers_role: sneaky.to_bytes()}
        )
    if layout != "flat":  # nor into targets/releases itself, which the owner signs
        sneaky.signed.version = 99
        sneaky.sign(keys.signer(alice_key.keyid))
        with pytest.raises(ServerRejectedError, match="0 of the 1"):
            ServerClient("https://notary.test", server).publish(
                image.gun, {"targets/releases": sneaky.to_bytes()}
            )


#: Short-lived online metadata: the snapshot expires before the timestamp.
SHORT_LIVED = {
    "timestamp_expiry_hours": 2,
    "timestamp_renew_before_hours": 1,
    "snapshot_expiry_days": 0.05,  # 1.2 hours
    "snapshot_renew_before_days": 0.02,
}


@pytest.mark.parametrize(
    ("expired", "refused_for"),
    [("snapshot", "(snapshot expired)"), ("timestamp", "(snapshot, timestamp expired)")],
    ids=["freeze: snapshot expired, timestamp still valid", "freeze: timestamp expired"],
)
def test_a_frozen_pair_is_refused_once_expired_while_fresh_data_verifies(
    person: MakePerson, push: Push, tmp_path: Path, expired: str, refused_for: str
) -> None:
    """A recorded (timestamp, snapshot) pair replayed after one of them expired. One
    injected clock for the server and every client: no waiting for real expiry."""
    clock = ServerClock()
    server = FlaskTransport(make_server(clock, **SHORT_LIVED))
    image = push()
    owner = person("owner", server_transport=server)
    ok(owner.run("init", image.gun))
    ok(owner.run("sign", image.ref))
    root = tmp_path / "root.json"
    ok(owner.run("trust", "export", image.gun, "-o", str(root)))
    recorder = Mitm(server)
    first = person("first", server_transport=recorder)
    ok(first.run("trust", "pin", image.gun, str(root)))
    ok(first.run("verify", image.ref))
    ts_raw = recorder.recorded["timestamp.json"][-1]
    ts = Metadata[Timestamp].from_bytes(ts_raw)
    snap_name = f"{ts.signed.snapshot_meta.version}.snapshot.json"
    snap_raw = server.request("GET", f"https://x/v2/{image.gun}/_trust/tuf/{snap_name}").data
    snap = Metadata[Snapshot].from_bytes(snap_raw)
    assert snap.signed.expires < ts.signed.expires

    later = {"snapshot": snap.signed.expires, "timestamp": ts.signed.expires}[expired]
    clock.offset = later + timedelta(minutes=1) - clock()  # server and clients alike

    attacker = Mitm(server)
    attacker.replay("/timestamp.json", ts_raw)
    attacker.replay(f"/{snap_name}", snap_raw)
    victim = person("victim", server_transport=attacker)
    ok(victim.run("trust", "pin", image.gun, str(root)))
    # the library verifier: expiry by the injected clock (the CLI's is python-tuf's real time)
    judge = Verifier(SERVER_URL, trust_dir=victim.trust_dir, transport=attacker, clock=clock)
    with pytest.raises(StaleMetadataError) as refused:
        judge.verify(image.ref)
    assert "freeze attack" in str(refused.value), refused.value
    assert refused_for in str(refused.value), refused.value  # the expiry that fired, by name

    # Without the attacker, at the same moment: the server renewed, verify passes.
    honest = person("honest", server_transport=server)
    ok(honest.run("trust", "pin", image.gun, str(root)))
    fresh = Verifier(SERVER_URL, trust_dir=honest.trust_dir, transport=server, clock=clock)
    assert fresh.verify(image.ref).digest == image.digest
