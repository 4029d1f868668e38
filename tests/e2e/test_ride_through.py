"""Publishing rides through a signer restart and a lost answer; no error names our
internals (issue 17). Real signer and server processes, ``python -m trustctl`` as a
subprocess, python-tuf's ngclient as the judge.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import urllib3
from tuf.api.metadata import Metadata, Snapshot

from tests.client_view import HTTPSFetcher, judge
from tests.e2e.remote import Remote
from tests.internals import leaks
from tests.procs import ROOT, Stack, start_stack
from tests.secrets import remember
from tests.trustctl.httpd import Reply, Request, serve

MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"


@dataclass
class Trustctl:
    """``python -m trustctl`` for one person, against ``server``."""

    trust_dir: Path
    server: str
    ca: Path

    def env(self, **extra: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTCTL_")}
        for role in ("root", "targets"):
            remember(f"ride {role} passphrase")
        return {
            **base,
            "TRUSTCTL_SERVER": self.server,
            "TRUSTCTL_TLS_CA": str(self.ca),
            "TRUSTCTL_TRUST_DIR": str(self.trust_dir),
            "TRUSTCTL_ROOT_PASSPHRASE": "ride root passphrase",
            "TRUSTCTL_TARGETS_PASSPHRASE": "ride targets passphrase",
            **extra,
        }

    def start(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "trustctl", *args],
            env=self.env(**env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )

    def ok(self, *args: str, **env: str) -> str:
        proc = self.start(*args, **env)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err}"
        return err


def signed_digest(tag: str) -> tuple[str, ...]:
    """``--digest D --size N --media-type M`` for a made-up manifest (no registry needed)."""
    manifest = f'{{"tag": "{tag}"}}'.encode()
    return (
        "--digest",
        f"sha256:{hashlib.sha256(manifest).hexdigest()}",
        "--size",
        str(len(manifest)),
        "--media-type",
        MEDIA_TYPE,
    )


def snapshot_version(remote: Remote) -> int:
    """Counts publishes: the server signs one new snapshot per stored upload."""
    return Metadata[Snapshot].from_bytes(remote.get("snapshot.json").data).signed.version


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = start_stack(tmp_path / "stack")
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def owner(stack: Stack, tmp_path: Path) -> Trustctl:
    return Trustctl(tmp_path / "owner", stack.url, stack.pki.ca_cert)


def _judge(stack: Stack, tmp: Path, gun: str, tag: str, owner: Trustctl) -> str | None:
    pinned = owner.trust_dir.parent / f"{tag}-root.json"
    owner.ok("trust", "export", gun, "-o", str(pinned))
    found = judge(
        tmp, stack.url, gun, tag, HTTPSFetcher(str(stack.pki.ca_cert)), pinned.read_bytes()
    )
    return None if found is None else "sha256:" + found.hashes["sha256"]


def test_sign_rides_through_a_signer_restart(stack: Stack, owner: Trustctl, tmp_path: Path) -> None:
    gun = "127.0.0.1:5000/ride/restart"
    owner.ok("init", gun)
    owner.ok("sign", f"{gun}:v1", *signed_digest("v1"))

    stack.signer.stop()
    proc = owner.start("-v", "sign", f"{gun}:v2", *signed_digest("v2"))
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # wait until trustctl says it is waiting for the signer
        seen.append(line)
        if "SIGNER_UNAVAILABLE" in line and "retry" in line:
            break
    else:
        proc.wait(timeout=30)
        pytest.fail(f"trustctl did not retry the 503 (exit {proc.returncode}):\n{''.join(seen)}")
    stack.signer.start()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, f"{out}\n{''.join(seen)}{err}"
    assert "OK: signed" in out
    assert _judge(stack, tmp_path / "judge", gun, "v2", owner) == signed_digest("v2")[1]


def test_a_publish_whose_answer_was_lost_is_reconciled_not_sent_twice(
    stack: Stack, owner: Trustctl, tmp_path: Path
) -> None:
    gun = "127.0.0.1:5000/ride/lost"
    owner.ok("init", gun)
    owner.ok("sign", f"{gun}:v1", *signed_digest("v1"))
    remote = Remote(stack.url, gun, str(stack.pki.ca_cert))
    before = snapshot_version(remote)

    upstream = urllib3.PoolManager(ca_certs=str(stack.pki.ca_cert), retries=False)
    posts: list[int] = []

    def lose_the_first_publish_answer(req: Request) -> Reply:
        headers = {k: v for k, v in req.headers.items() if k not in ("host", "content-length")}
        r = upstream.request(
            req.method, stack.url + req.path, headers=headers, body=req.body or None
        )
        if req.method == "POST":
            posts.append(r.status)
            if len(posts) == 1:
                return Reply(drop=True)  # the server stored it; the client never hears
        keep = ("content-type", "www-authenticate", "retry-after", "etag", "cache-control")
        return Reply(r.status, {k: v for k, v in r.headers.items() if k.lower() in keep}, r.data)

    proxy = serve(lose_the_first_publish_answer)
    try:
        via_proxy = Trustctl(owner.trust_dir, proxy.url, owner.ca)
        proc = via_proxy.start("-v", "sign", f"{gun}:v2", *signed_digest("v2"))
        out, err = proc.communicate(timeout=120)
    finally:
        proxy.stop()
    assert proc.returncode == 0, f"{out}\n{err}"
    assert posts == [200], "the upload was sent again after its answer was lost"
    assert "is stored: not sending it again" in err
    assert snapshot_version(remote) == before + 1  # published once, no version skipped
    assert _judge(stack, tmp_path / "judge", gun, "v2", owner) == signed_digest("v2")[1]


def test_signer_unavailable_body_names_no_internals(stack: Stack) -> None:
    remote = Remote(stack.url, "127.0.0.1:5000/ride/body", str(stack.pki.ca_cert))
    owner = remote.new_owner()
    owner.add_tag("v1")
    assert (
        remote.publish({"root": owner.root_bytes(), "targets": owner.targets_bytes()}).status == 200
    )
    signer_port = int(stack.server.env["NOTARY_SERVER_SIGNER_URL"].rsplit(":", 1)[1])

    stack.signer.stop()
    owner.add_tag("v2")
    resp = remote.publish({"targets": owner.targets_bytes()})
    body = json.loads(resp.data)
    assert (resp.status, body["errors"][0]["code"]) == (503, "SIGNER_UNAVAILABLE")
    assert leaks(resp.data, [signer_port]) == [], resp.data
    assert resp.headers.get("Retry-After", "").isdigit()
    request_id = resp.headers.get("X-Request-ID", "")
    assert re.fullmatch(r"[0-9a-f]{16,32}", request_id), resp.headers
    assert body["request_id"] == request_id
    # the details are in the server's log, under the same request id
    logged = [line for line in stack.logs().splitlines() if request_id in line]
    assert logged and any(str(signer_port) in line for line in logged), logged
