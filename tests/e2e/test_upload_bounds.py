"""Uploads parsed and bounded before any lock (issue 10, row 5), on real processes.

A big upload is parsed while it holds no lock, so it never stops other repositories'
publishes; limits apply while the body streams in, and "too many parts" is named in
our error envelope. No timing is asserted: client timeouts are generous and only
tell "stalled" from "answered".
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3

from tests.e2e.remote import Remote
from tests.e2e.test_hostile_clients import ANSWER_TIMEOUT, GUN, OTHER_GUN, _connect, _port
from tests.procs import Stack, start_stack
from tests.tufrepo import Owner

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = start_stack(tmp_path)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def published(stack: Stack) -> tuple[Remote, Owner]:
    remote = Remote(stack.url, GUN, str(stack.pki.ca_cert))
    owner = remote.new_owner()
    owner.add_tag("v1")
    resp = remote.publish({"root": owner.root_bytes(), "targets": owner.targets_bytes()})
    assert resp.status == 200, resp.data
    return remote, owner


def _big_targets(n_targets: int) -> bytes:
    """Unsigned targets metadata of about 150 bytes per target."""
    targets = {
        f"tag-{i:07d}-{'x' * 40}": {"length": 1000 + i, "hashes": {"sha256": f"{i:064x}"}}
        for i in range(n_targets)
    }
    signed = {
        "_type": "targets",
        "spec_version": "1.0.31",
        "version": 2,
        "expires": "2099-01-01T00:00:00Z",
        "targets": targets,
    }
    return json.dumps({"signed": signed, "signatures": []}).encode()


HOSTILE_UPLOADS = {
    # as reported: no root, to a repository that does not exist
    "no-root-to-a-new-repository": False,
    # a root of the uploader's own making: everything is parsed and checked
    "own-root-and-unsigned-targets": True,
}


@pytest.mark.parametrize("with_root", list(HOSTILE_UPLOADS.values()), ids=list(HOSTILE_UPLOADS))
def test_refused_big_upload_does_not_block_other_repositories(
    stack: Stack, published: tuple[Remote, Owner], with_root: bool
) -> None:
    """Row 5: two uploads of 2 x 30 MiB to another repository, while others publish."""
    remote, owner = published
    big = _big_targets(190_000)
    assert 28 * 2**20 < len(big) < 32 * 2**20
    hostile = Remote(stack.url, OTHER_GUN, remote.ca_file)
    files = {"targets": big, "targets/releases": big}
    if with_root:
        files["root"] = hostile.new_owner().root_bytes()
    answer: dict[str, urllib3.BaseHTTPResponse] = {}

    def upload() -> None:
        answer["big"] = hostile.publish(files, timeout=180)

    uploads = [threading.Thread(target=upload) for _ in range(2)]
    for t in uploads:
        t.start()
    statuses = []
    try:
        # publishes of another repository for as long as the uploads are in flight
        while any(t.is_alive() for t in uploads) and len(statuses) < 200:
            owner.add_tag(f"during-{len(statuses)}")
            resp = remote.publish({"targets": owner.targets_bytes()}, timeout=ANSWER_TIMEOUT)
            statuses.append((resp.status, resp.data[:200]))
    finally:
        for t in uploads:
            t.join()
    refused = [(s, body) for s, body in statuses if s != 200]
    assert statuses and not refused, f"{len(refused)} of {len(statuses)} refused: {refused[:3]}"
    assert answer["big"].status in (400, 413), answer["big"].data[:300]


def test_upload_larger_than_the_limit_is_refused_before_its_body(stack: Stack) -> None:
    """The body limit applies to the announced length: 413 without sending a byte of it."""
    ctx = ssl.create_default_context(cafile=str(stack.pki.ca_cert))
    with ctx.wrap_socket(
        _connect(_port(stack.url), "127.0.0.1"), server_hostname="127.0.0.1"
    ) as tls:
        tls.sendall(
            f"POST /v2/{GUN}/_trust/tuf/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: multipart/form-data; boundary=xyz\r\n"
            f"Content-Length: {10 * 2**30}\r\n\r\n".encode()
        )
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = tls.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, raw = answer.decode("latin-1").partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 413"), head[:200]
    body = json.loads(raw)
    assert body["errors"][0]["code"] == "TOO_LARGE"


def test_too_many_parts_is_named_in_our_envelope(stack: Stack) -> None:
    remote = Remote(stack.url, GUN, str(stack.pki.ca_cert))
    fields = [("files", (f"targets/r{i}", b"{}", "application/json")) for i in range(1100)]
    resp = remote.pool.request("POST", remote.tuf_url(), fields=fields, retries=False, timeout=60)
    assert resp.status == 413, resp.data
    err = json.loads(resp.data)["errors"][0]
    assert err["code"] == "TOO_MANY_PARTS", err
    assert "1024" in err["message"], err
