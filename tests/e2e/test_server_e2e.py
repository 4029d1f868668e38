"""The trust server as a user runs it: real processes, HTTPS, mutual TLS to the signer,
SQLite or PostgreSQL, judged by python-tuf's ngclient over the network."""

from __future__ import annotations

import json
from pathlib import Path

import urllib3
from securesystemslib.signer import CryptoSigner

from tests.client_view import HTTPSFetcher, judge
from tests.e2e.remote import Remote
from tests.procs import Stack

GUN = "127.0.0.1:5000/team/app"


def _publish(stack: Stack, files: dict[str, bytes]) -> urllib3.BaseHTTPResponse:
    return Remote(stack.url, GUN, str(stack.pki.ca_cert)).publish(files)


def _current(stack: Stack) -> dict[str, bytes]:
    return Remote(stack.url, GUN, str(stack.pki.ca_cert)).current()


def test_repository_lifecycle_over_https_survives_rotations_and_restart(
    stack: Stack, tmp_path: Path, monkeypatch
):
    # The machine's CA variables must not matter: the client trusts exactly our CA.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent.pem")
    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent.pem")
    owner = Remote(stack.url, GUN, str(stack.pki.ca_cert)).new_owner()
    pinned = owner.root_bytes()
    owner.add_tag("v1")
    resp = _publish(stack, {"root": pinned, "targets": owner.targets_bytes()})
    assert resp.status == 200, resp.data

    fetcher = HTTPSFetcher(str(stack.pki.ca_cert))
    client_dir = tmp_path / "client"
    assert judge(client_dir, stack.url, GUN, "v1", fetcher, pinned) is not None

    for tag in ("v2", "v3"):
        owner.add_tag(tag)
        assert _publish(stack, {"targets": owner.targets_bytes()}).status == 200
        assert judge(client_dir, stack.url, GUN, tag, fetcher, None) is not None

    owner.rotate_targets(CryptoSigner.generate_ecdsa())
    owner.add_tag("v4")
    assert (
        _publish(stack, {"root": owner.root_bytes(), "targets": owner.targets_bytes()}).status
        == 200
    )
    assert judge(client_dir, stack.url, GUN, "v4", fetcher, None) is not None

    owner.rotate_root([CryptoSigner.generate_ecdsa()])
    owner.add_tag("v5")
    assert (
        _publish(stack, {"root": owner.root_bytes(), "targets": owner.targets_bytes()}).status
        == 200
    )
    assert judge(tmp_path / "fresh", stack.url, GUN, "v5", fetcher, pinned) is not None

    # A bad upload over the network: named code, nothing changes.
    before = _current(stack)
    owner.targets.version -= 1
    resp = _publish(stack, {"targets": owner.targets_bytes()})
    assert resp.status == 409 and json.loads(resp.data)["errors"][0]["code"] == "VERSION"
    assert _current(stack) == before

    # A restart loses nothing.
    stack.server.stop()
    stack.server.start()
    assert _current(stack) == before
    for tag in ("v1", "v2", "v3", "v4", "v5"):
        assert judge(tmp_path / f"after-{tag}", stack.url, GUN, tag, fetcher, pinned) is not None
