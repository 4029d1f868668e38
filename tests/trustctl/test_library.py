"""trustctl.library: one call per user story, over collaborators passed in, without the
CLI's context object."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.trustctl.support import FAST_KDF, SERVER_URL, FlaskTransport, Person, Run
from trustctl.changes import Changelist
from trustctl.client import ServerClient
from trustctl.errors import TagNotSignedError, TrustctlError
from trustctl.fetcher import TransportFetcher
from trustctl.keys import KeyStore, PassphraseSource, load_public_key_file
from trustctl.library import (
    TagToSign,
    add_signer,
    publish_staged,
    remove_signer,
    remove_signer_change,
    revoke_changes,
    revoke_tags,
    rotate_key,
    set_signer_paths,
    sign_changes,
    sign_tags,
    stage,
    verify_tags,
    witness_role,
)
from trustctl.pending import ServerPendingStore
from trustctl.reference import parse_reference
from trustctl.repo import Publisher, Services
from trustctl.truststore import TrustStore
from trustctl.tufview import TrustedRepository
from trustctl.verify import VerifiedTag

GUN = "127.0.0.1:5999/library/app"
MEDIA = "application/vnd.oci.image.manifest.v1+json"
ROOT = Path(__file__).resolve().parents[2]


def ok(run: Run) -> Run:
    assert run.exit_code == 0, str(run)
    return run


def test_the_library_never_builds_the_cli_context() -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "import trustctl.library\n"
        "from trustctl.api import Verifier\n"
        "Verifier('https://127.0.0.1:9', trust_dir=Path('unused'))\n"
        "print(sorted(m for m in sys.modules if m in ('trustctl.context', 'trustctl.cli')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == "[]", out


@dataclass
class Owner:
    """The collaborators a program passes to the library, for an initialised repository."""

    person: Person
    publisher: Publisher
    open_trusted: Callable[[], TrustedRepository]
    staged: Changelist

    def verify(self, tag: str) -> VerifiedTag | TrustctlError:
        [answer] = verify_tags(self.open_trusted(), [parse_reference(f"{GUN}:{tag}")])
        return answer

    def targets_version(self) -> int:
        repo = self.open_trusted()
        repo.refresh()
        return repo.targets.signed.version


@pytest.fixture
def owner(person: Callable[..., Person], server: FlaskTransport) -> Owner:
    """An initialised repository and the library's collaborators for its owner (no CLI
    context: the server client, key store, verified views, pending store, changelist)."""
    someone = person("owner")
    ok(someone.run("init", GUN))
    client = ServerClient(SERVER_URL, server)
    store = TrustStore(someone.trust_dir)

    def open_trusted() -> TrustedRepository:
        return TrustedRepository(
            gun=GUN,
            cache_dir=store.cache_dir(GUN),
            metadata_url=client.metadata_url(GUN),
            fetcher=TransportFetcher(server, scope=f"repository:{GUN}:pull"),
            pinned_root=store.require_pinned(GUN).data,
            server=SERVER_URL,
        )

    keystore = KeyStore(
        someone.trust_dir / "private", PassphraseSource(someone.env), kdf_iterations=FAST_KDF
    )
    services = Services(
        client=client,
        keystore=keystore,
        open_trusted=open_trusted,
        pending_store=lambda: ServerPendingStore(client),
    )
    return Owner(
        someone, Publisher(GUN, services), open_trusted, Changelist(store.changes_dir(GUN))
    )


def test_each_story_is_one_call(owner: Owner, tmp_path: Path) -> None:
    publisher, open_trusted = owner.publisher, owner.open_trusted
    signed = sign_tags(publisher, [TagToSign("v1", f"sha256:{1:064x}", 1234, MEDIA)])
    assert signed.status == ["published"] and signed.result.published
    again = sign_tags(publisher, [TagToSign("v1", f"sha256:{1:064x}", 1234, MEDIA)])
    assert again.status == ["unchanged"]

    [answer] = verify_tags(open_trusted(), [parse_reference(f"{GUN}:v1")])
    assert isinstance(answer, VerifiedTag) and answer.digest == f"sha256:{1:064x}"

    ok(owner.person.run("key", "generate", "alice", "--dir", str(tmp_path)))
    alice = load_public_key_file(tmp_path / "alice.pub")
    added = add_signer(publisher, "alice", [alice], paths=["release-*"])
    assert "targets" in added.result.published and [c.action for c in added.changes] == [
        "add-signer"
    ]
    signers = open_trusted().targets.signed.delegations
    assert signers is not None and signers.roles is not None
    assert alice.keyid in signers.roles["targets/alice"].keyids

    rotated = rotate_key(publisher, "targets")
    assert rotated.result.published["root"] == 2
    root = open_trusted().root.signed
    assert root.roles["targets"].keyids == [rotated.rotation.new_keyid]
    assert rotated.rotation.new_keyid not in rotated.rotation.old_keyids

    [after] = verify_tags(open_trusted(), [parse_reference(f"{GUN}:v1")])
    assert isinstance(after, VerifiedTag)  # signed tags still verify after the rotation


def tag(name: str, n: int) -> TagToSign:
    return TagToSign(name, f"sha256:{n:064x}", 1000 + n, MEDIA)


def test_revoke_tags_is_one_call(owner: Owner) -> None:
    sign_tags(owner.publisher, [tag("v1", 1), tag("v2", 2)])

    revoked = revoke_tags(owner.publisher, ["v1", "never-signed"])

    assert revoked.status == ["published", "unchanged"]
    assert [c.action for c in revoked.changes] == ["remove-target", "remove-target"]
    assert revoked.result.published
    assert isinstance(owner.verify("v1"), TagNotSignedError)
    assert isinstance(owner.verify("v2"), VerifiedTag)


def test_staged_changes_wait_for_publish_staged(owner: Owner) -> None:
    sign_tags(owner.publisher, [tag("old", 9)])
    before = owner.targets_version()

    kept = stage(owner.staged, [*sign_changes([tag("v1", 1)]), *revoke_changes(["old"])])

    assert [c.id for c in owner.staged.entries()] == [c.id for c in kept]
    assert owner.targets_version() == before  # staging sends nothing
    assert isinstance(owner.verify("v1"), TagNotSignedError)

    published = publish_staged(owner.publisher, owner.staged)

    assert [c.id for c in published.changes] == [c.id for c in kept]
    assert published.result.published and owner.staged.entries() == []
    assert isinstance(owner.verify("v1"), VerifiedTag)
    assert isinstance(owner.verify("old"), TagNotSignedError)
    nothing = publish_staged(owner.publisher, owner.staged)
    assert nothing.changes == [] and not nothing.result.published


def test_a_failed_publish_staged_keeps_the_changes(owner: Owner) -> None:
    before = owner.targets_version()
    kept = stage(owner.staged, [*sign_changes([tag("v1", 1)]), remove_signer_change("nobody")])

    with pytest.raises(TrustctlError, match="nobody"):
        publish_staged(owner.publisher, owner.staged)

    assert [c.id for c in owner.staged.entries()] == [c.id for c in kept]
    assert owner.targets_version() == before


def test_remove_signer_and_set_paths_are_one_call_each(owner: Owner, tmp_path: Path) -> None:
    for name in ("alice", "bob"):
        ok(owner.person.run("key", "generate", name, "--dir", str(tmp_path)))
    alice, bob = (load_public_key_file(tmp_path / f"{n}.pub") for n in ("alice", "bob"))
    add_signer(owner.publisher, "alice", [alice])
    add_signer(owner.publisher, "bob", [bob])

    held = set_signer_paths(owner.publisher, ["release-*"])
    assert [c.action for c in held.changes] == ["set-paths"] and held.result.published
    removed = remove_signer(owner.publisher, "alice")
    assert [c.action for c in removed.changes] == ["remove-signer"] and removed.result.published

    delegations = owner.open_trusted().targets.signed.delegations
    assert delegations is not None and delegations.roles is not None
    assert "targets/alice" not in delegations.roles
    assert delegations.roles["targets/bob"].keyids == [bob.keyid]
    assert delegations.roles["targets/releases"].paths == ["release-*"]


def test_witness_role_re_signs_it_unchanged(owner: Owner) -> None:
    sign_tags(owner.publisher, [tag("v1", 1)])
    before = owner.open_trusted()
    before.refresh()
    old = before.targets.signed

    witnessed = witness_role(owner.publisher, "targets")

    after = owner.open_trusted()
    after.refresh()
    new = after.targets.signed
    assert witnessed.result.published["targets"] == old.version + 1 == new.version
    assert new.targets == old.targets and new.expires >= old.expires
