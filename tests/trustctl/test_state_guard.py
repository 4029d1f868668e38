"""A damaged trusted state is refused, never read as "nothing trusted yet".

python-tuf reads an unreadable local ``timestamp.json`` or ``snapshot.json`` as absent
and starts over from the pinned root; so, once a repository was verified, losing
those files would let an attacker replay older metadata (an older, vulnerable digest)
unnoticed. trustctl refuses such a state with ``STATE_CORRUPT`` until the deployer
pins the root again. The trust server is the real app in process; the attacker sits
in the middle (:class:`~tests.trustctl.support.Mitm`). The Notary-dialect cases run
against real processes in ``test_notary_e2e.py``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.trustctl.conftest import Image
from tests.trustctl.support import SERVER_URL, FlaskTransport, Mitm, Person, Run
from trustctl.api import Verifier
from trustctl.errors import EXIT_TRUST, StateCorruptError
from trustctl.transport import Response

MakePerson = Callable[..., Person]
Push = Callable[..., Image]


def ok(run: Run) -> Run:
    assert run.exit_code == 0, str(run)
    return run


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


#: name -> what the damage does to python-tuf's metadata directory
DAMAGE: dict[str, Callable[[Path], None]] = {
    "timestamp-deleted": lambda m: (m / "timestamp.json").unlink(),
    "timestamp-truncated": lambda m: _truncate(m / "timestamp.json"),
    "timestamp-garbage": lambda m: (m / "timestamp.json").write_bytes(b"\x00garbage\xff"),
    "snapshot-garbage": lambda m: (m / "snapshot.json").write_bytes(b"{ not json"),
    "snapshot-deleted": lambda m: (m / "snapshot.json").unlink(),
    "timestamp-and-snapshot-garbage": lambda m: [
        (m / name).write_bytes(b"garbage") for name in ("timestamp.json", "snapshot.json")
    ],
    "metadata-dir-deleted": lambda m: shutil.rmtree(m),
}


def files_under(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


class Scene:
    """A repository signed v1 then v2; a deployer who pinned its root, verified both,
    and talks to the server through the attacker; the timestamp v1 was verified with."""

    def __init__(self, person: MakePerson, push: Push, tmp_path: Path, server: FlaskTransport):
        self.image = image = push()
        self.owner = owner = person("owner")
        ok(owner.run("init", image.gun))
        ok(owner.run("sign", image.ref))
        self.root_file = tmp_path / "root.json"
        ok(owner.run("trust", "export", image.gun, "-o", str(self.root_file)))
        self.mitm = Mitm(server)
        self.deployer = person("deployer", server_transport=self.mitm)
        ok(self.deployer.run("trust", "pin", image.gun, str(self.root_file)))
        ok(self.deployer.run("verify", image.ref))
        self.old_timestamp = self.mitm.recorded["timestamp.json"][-1]
        cache = self.deployer.trust_dir / "tuf" / image.gun / "metadata"
        self.kept = {n: (cache / n).read_bytes() for n in ("timestamp.json", "snapshot.json")}
        ok(owner.run("sign", f"{image.gun}:v2", *self.digest_args()))
        # the newer state is trusted
        ok(self.deployer.run("verify", "--no-registry-check", f"{image.gun}:v2"))
        assert self.mitm.recorded["timestamp.json"][-1] != self.old_timestamp
        self.gun_dir = self.deployer.trust_dir / "tuf" / image.gun
        self.metadata = self.gun_dir / "metadata"

    def digest_args(self) -> list[str]:
        i = self.image
        return ["--digest", i.digest, "--size", str(i.size), "--media-type", i.media_type]


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_a_damaged_trusted_state_is_refused_until_the_root_is_pinned_again(
    person: MakePerson, push: Push, tmp_path: Path, server: FlaskTransport, damage: str
) -> None:
    s = Scene(person, push, tmp_path, server)
    DAMAGE[damage](s.metadata)
    before = files_under(s.gun_dir)
    s.mitm.replay("/timestamp.json", s.old_timestamp)  # with the state gone, it would pass

    for command in ("verify", "pull"):
        run = s.deployer.run("--json", command, s.image.ref)
        assert run.exit_code == EXIT_TRUST, str(run)
        error = run.json["error"]
        assert error["code"] == "STATE_CORRUPT", str(run)
        assert "rollback attack" in error["message"], error
        assert f"trustctl trust pin {s.image.gun}" in error["hint"], error
        assert files_under(s.gun_dir) == before, "the refused run advanced the trust dir"
    plain = s.deployer.run("verify", s.image.ref)  # one line of diagnosis, one hint
    lines = [line for line in plain.stderr.splitlines() if line.strip()]
    assert [line.split(":", 1)[0] for line in lines] == ["Error", "Hint"], str(plain)
    assert "STATE_CORRUPT" not in plain.stdout and "Traceback" not in plain.stderr

    # the documented re-initialisation: pin the root again, against the honest server
    s.mitm.clear()
    ok(s.deployer.run("trust", "pin", s.image.gun, str(s.root_file)))
    ok(s.deployer.run("verify", "--no-registry-check", f"{s.image.gun}:v2"))
    ok(s.deployer.run("verify", s.image.ref))


def test_a_fresh_pin_verifies_and_a_refused_first_verify_does_not_lock_it(
    person: MakePerson, push: Push, tmp_path: Path, server: FlaskTransport
) -> None:
    image = push()
    owner = person("owner")
    ok(owner.run("init", image.gun))
    ok(owner.run("sign", image.ref))
    root_file = tmp_path / "root.json"
    ok(owner.run("trust", "export", image.gun, "-o", str(root_file)))
    mitm = Mitm(server)
    deployer = person("deployer", server_transport=mitm)
    ok(deployer.run("trust", "pin", image.gun, str(root_file)))
    mitm.replay("/timestamp.json", b"{ not json")  # a first verify that fails...
    assert deployer.run("verify", image.ref).exit_code == EXIT_TRUST
    mitm.clear()
    ok(deployer.run("verify", image.ref))  # ...leaves the pin fresh: this one passes
    ok(deployer.run("verify", image.ref))  # and a warm one


def test_the_library_refuses_a_damaged_trusted_state(
    person: MakePerson, push: Push, tmp_path: Path, server: FlaskTransport
) -> None:
    s = Scene(person, push, tmp_path, server)
    (s.metadata / "timestamp.json").unlink()
    before = files_under(s.gun_dir)
    s.mitm.replay("/timestamp.json", s.old_timestamp)
    verifier = Verifier(SERVER_URL, trust_dir=s.deployer.trust_dir, transport=s.mitm)
    for _ in range(2):  # every call, not just the first
        with pytest.raises(StateCorruptError) as refused:
            verifier.verify(s.image.ref, registry_mode="skip")
        assert refused.value.code == "STATE_CORRUPT"
        assert "rollback attack" in refused.value.message
    assert files_under(s.gun_dir) == before


def test_a_running_verifier_refuses_a_state_damaged_under_it(
    person: MakePerson, push: Push, tmp_path: Path, server: FlaskTransport
) -> None:
    """The warm path re-reads the trusted state from disk when the server's timestamp
    changes: a state damaged meanwhile must not reset it either."""
    s = Scene(person, push, tmp_path, server)
    verifier = Verifier(SERVER_URL, trust_dir=s.deployer.trust_dir, transport=s.mitm)
    assert verifier.verify(f"{s.image.gun}:v2", registry_mode="skip").digest == s.image.digest
    (s.metadata / "timestamp.json").write_bytes(b"garbage")
    s.mitm.replay("/timestamp.json", s.old_timestamp)
    with pytest.raises(StateCorruptError):
        verifier.verify(s.image.ref, registry_mode="skip")


def _break_signature(path: Path) -> None:
    """Valid JSON, valid metadata, a signature that no longer verifies."""
    doc = json.loads(path.read_bytes())
    sig = doc["signatures"][0]
    sig["sig"] = ("0" if sig["sig"][0] != "0" else "1") + sig["sig"][1:]
    path.write_bytes(json.dumps(doc).encode())


def _older_copy(s: Scene, name: str) -> None:
    """Put back the validly signed copy the deployer trusted at v1."""
    (s.metadata / name).write_bytes(s.kept[name])


#: name -> damage that still parses: python-tuf silently drops (or trusts) the files
SUBTLE: dict[str, Callable[[Scene], None]] = {
    "signatures-broken": lambda s: [
        _break_signature(s.metadata / n) for n in ("timestamp.json", "snapshot.json")
    ],
    "older-copies-put-back": lambda s: [
        _older_copy(s, n) for n in ("timestamp.json", "snapshot.json")
    ],
}


@pytest.mark.parametrize("damage", list(SUBTLE), ids=list(SUBTLE))
def test_a_state_that_parses_but_does_not_hold_is_refused_after_the_refresh(
    person: MakePerson, push: Push, tmp_path: Path, server: FlaskTransport, damage: str
) -> None:
    """Files that parse but python-tuf cannot trust (or older trusted copies) are found
    by what the refresh ends on: never older than what was verified from this root."""
    s = Scene(person, push, tmp_path, server)
    SUBTLE[damage](s)
    s.mitm.replay("/timestamp.json", s.old_timestamp)
    for _ in range(2):  # refused again: the replay is never taken
        run = s.deployer.run("--json", "verify", s.image.ref)
        assert run.exit_code == EXIT_TRUST, str(run)
        error = run.json["error"]
        assert error["code"] == "STATE_CORRUPT", str(run)
        assert "rollback attack" in error["message"], error
    s.mitm.clear()  # the honest server: its newer state verifies again
    ok(s.deployer.run("verify", "--no-registry-check", f"{s.image.gun}:v2"))


def test_a_root_rotation_lost_from_the_trusted_state_is_refused(
    person: MakePerson, push: Push, tmp_path: Path, server: FlaskTransport
) -> None:
    """The owner rotated the root (e.g. to revoke a key); the deployer followed. With
    that root gone from the trust dir and withheld by the attacker, python-tuf would
    stay on the pinned root: the rotation would be undone without a word."""
    s = Scene(person, push, tmp_path, server)
    ok(s.owner.run("key", "rotate", s.image.gun, "root"))
    ok(s.deployer.run("verify", s.image.ref))
    rotated = s.metadata / "root_history" / "2.root.json"
    assert rotated.exists()
    rotated.unlink()
    s.mitm.rules["/2.root.json"] = lambda r: Response(404, {}, b"", r.url)  # withheld
    run = s.deployer.run("--json", "verify", s.image.ref)
    assert run.exit_code == EXIT_TRUST, str(run)
    assert run.json["error"]["code"] == "STATE_CORRUPT", str(run)
    assert "2.root.json" in run.json["error"]["message"]
    s.mitm.clear()
    ok(s.deployer.run("trust", "pin", s.image.gun, str(s.root_file)))  # the pinned v1 still
    ok(s.deployer.run("verify", s.image.ref))  # follows the rotation again
    assert rotated.exists()
