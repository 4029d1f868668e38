"""trustctl.library: one call per user story, over collaborators passed in, without the
CLI's context object."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.trustctl.support import FAST_KDF, SERVER_URL, FlaskTransport, Person, Run
from trustctl.client import ServerClient
from trustctl.fetcher import TransportFetcher
from trustctl.keys import KeyStore, PassphraseSource, load_public_key_file
from trustctl.library import TagToSign, add_signer, rotate_key, sign_tags, verify_tags
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


def test_each_story_is_one_call(
    person: Callable[..., Person], server: FlaskTransport, tmp_path: Path
) -> None:
    owner = person("owner")
    ok(owner.run("init", GUN))
    client = ServerClient(SERVER_URL, server)
    store = TrustStore(owner.trust_dir)

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
        owner.trust_dir / "private", PassphraseSource(owner.env), kdf_iterations=FAST_KDF
    )
    publisher = Publisher(
        GUN,
        Services(
            client=client,
            keystore=keystore,
            open_trusted=open_trusted,
            pending_store=lambda: ServerPendingStore(client),
        ),
    )

    signed = sign_tags(publisher, [TagToSign("v1", f"sha256:{1:064x}", 1234, MEDIA)])
    assert signed.status == ["published"] and signed.result.published
    again = sign_tags(publisher, [TagToSign("v1", f"sha256:{1:064x}", 1234, MEDIA)])
    assert again.status == ["unchanged"]

    [answer] = verify_tags(open_trusted(), [parse_reference(f"{GUN}:v1")])
    assert isinstance(answer, VerifiedTag) and answer.digest == f"sha256:{1:064x}"

    ok(owner.run("key", "generate", "alice", "--dir", str(tmp_path)))
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
