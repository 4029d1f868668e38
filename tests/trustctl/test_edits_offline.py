"""Edits are pure: a publish attempt fetches every role its edits read, then edits with
no network access (the trust server is cut off between the two steps)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.trustctl.support import FAST_KDF, SERVER_URL, FlaskTransport, Person, Run
from trustctl.admin import key_doc
from trustctl.client import ServerClient
from trustctl.edits import (
    AddSigner,
    AddTarget,
    Edit,
    Plan,
    Published,
    RemoveSigner,
    RemoveTarget,
    RotateBins,
    SetPaths,
    SetThreshold,
    Witness,
)
from trustctl.fetcher import TransportFetcher
from trustctl.keys import KeyStore, PassphraseSource
from trustctl.layout import RELEASES
from trustctl.transport import Response
from trustctl.truststore import TrustStore
from trustctl.tufview import TrustedRepository

GUN = "127.0.0.1:5999/offline/app"
MEDIA = "application/vnd.oci.image.manifest.v1+json"


def ok(run: Run) -> Run:
    assert run.exit_code == 0, str(run)
    return run


class CutOff:
    """A transport that can be cut off: any request after ``cut`` fails the test."""

    def __init__(self, inner: FlaskTransport) -> None:
        self.inner = inner
        self.cut = False

    def request(self, method: str, url: str, **kwargs: Any) -> Response:
        assert not self.cut, f"network access in the middle of an edit: {method} {url}"
        return self.inner.request(method, url, **kwargs)


@pytest.fixture
def owner(person: Callable[..., Person], tmp_path: Path) -> Person:
    """A binned repository with a signer (alice), tags signed by the owner and by her."""
    owner = person("owner")
    ok(owner.run("init", GUN))
    ok(owner.run("key", "generate", "alice", "--dir", str(tmp_path)))
    ok(owner.run("signer", "add", "alice", "--key", str(tmp_path / "alice.pub"), GUN))
    for n, tag in enumerate(("v1", "v2", "owner-1")):
        digest = ["--digest", f"sha256:{n + 1:064x}", "--size", "1234", "--media-type", MEDIA]
        ok(owner.run("sign", f"{GUN}:{tag}", *digest))
    return owner


def new_key(tmp_path: Path) -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from securesystemslib.signer import SSlibKey

    private = ed25519.Ed25519PrivateKey.generate()
    return key_doc(SSlibKey.from_crypto(private.public_key()))


EDITS: list[tuple[str, Callable[[Path], Edit]]] = [
    (
        "sign a new tag",
        lambda _p: AddTarget(tag="v9", sha256="ab" * 32, length=9, media_type=MEDIA),
    ),
    (
        "sign into targets/releases",
        lambda _p: AddTarget(tag="v8", sha256="cd" * 32, length=8, media_type=MEDIA, role=RELEASES),
    ),
    ("revoke a tag", lambda _p: RemoveTarget(tag="v1")),
    ("revoke from a named role", lambda _p: RemoveTarget(tag="v2", role=RELEASES)),
    ("add a signer", lambda p: AddSigner(name="bob", keys=(new_key(p),))),
    ("remove a signer", lambda _p: RemoveSigner(name="alice")),
    ("set the threshold", lambda _p: SetThreshold(threshold=1)),
    ("set the signers' tags", lambda _p: SetPaths(paths=("*", "v*"))),
    ("witness the signers' bins", lambda _p: Witness(role=RELEASES)),
    ("witness targets", lambda _p: Witness(role="targets")),
    ("rotate the bins key", lambda p: RotateBins(key=new_key(p))),
]


@pytest.mark.parametrize("make_edit", [e for _, e in EDITS], ids=[i for i, _ in EDITS])
def test_an_edit_reads_only_what_was_fetched_before_it(
    owner: Person, server: FlaskTransport, tmp_path: Path, make_edit: Callable[[Path], Edit]
) -> None:
    transport = CutOff(server)
    repo = TrustedRepository(
        gun=GUN,
        cache_dir=tmp_path / "fresh" / "metadata",
        metadata_url=ServerClient(SERVER_URL, transport).metadata_url(GUN),
        fetcher=TransportFetcher(transport, scope=f"repository:{GUN}:pull"),
        pinned_root=TrustStore(owner.trust_dir).require_pinned(GUN).data,
        server=SERVER_URL,
    )
    repo.refresh()
    edit = make_edit(tmp_path)
    published = Published.fetch(repo, [edit])
    transport.cut = True
    keystore = KeyStore(
        owner.trust_dir / "private", PassphraseSource(owner.env), kdf_iterations=FAST_KDF
    )
    plan = Plan(published, keystore, datetime.now(UTC))
    changed = edit.apply(plan)
    assert changed and set(changed) <= {"root", *plan.dirty}, (changed, plan.dirty)
