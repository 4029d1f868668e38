"""Token authentication end to end: a real server with `auth_type = "token"`, a token
service (the realm) that checks basic credentials and issues JWTs per scope, and
`trustctl` processes that follow the challenge and cache the token."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from tests.procs import ROOT, start_stack
from tests.secrets import remember
from tests.tokens import ISSUER, SERVICE, Issuer
from tests.trustctl.httpd import Reply, Request, serve

USERS = {
    "ci": ("ci-password, test only", ("push", "pull", "*")),
    "reader": ("reader-password, test only", ("pull",)),
}


def _token_service(issuer: Issuer):
    def handle(req: Request) -> Reply:
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Basic "):
            return Reply(401, {"WWW-Authenticate": 'Basic realm="test"'})
        user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        if USERS.get(user, ("", ()))[0] != password:
            return Reply(401, body=b'{"details":"bad credentials"}')
        query = parse_qs(urlparse(req.path).query)
        if query.get("service") != [SERVICE]:
            return Reply(400, body=b'{"details":"unknown service"}')
        access = []
        for scope in query.get("scope", []):
            # a GUN contains ':' (host:port): the actions are after the last ':'
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            allowed = [a for a in actions.split(",") if a in USERS[user][1]]
            access.append({"type": kind, "name": name, "actions": allowed})
        token = issuer.token(access)
        return Reply(
            200,
            {"Content-Type": "application/json"},
            json.dumps({"token": token, "expires_in": 300}).encode(),
        )

    return handle


def _trustctl(
    tmp: Path, stack_url: str, ca: Path, user: str | None, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TRUSTCTL_", "NOTARY_", "DOCKER_"))
    }
    env.update(
        TRUSTCTL_SERVER=stack_url,
        TRUSTCTL_TLS_CA=str(ca),
        TRUSTCTL_TRUST_DIR=str(tmp / f"trust-{user}"),
        TRUSTCTL_ROOT_PASSPHRASE=remember("token-e2e root passphrase"),
        TRUSTCTL_TARGETS_PASSPHRASE=remember("token-e2e targets passphrase"),
        DOCKER_CONFIG=str(tmp / "docker"),
    )
    if user:
        env.update(TRUSTCTL_SERVER_USERNAME=user, TRUSTCTL_SERVER_PASSWORD=remember(USERS[user][0]))
    return subprocess.run(
        [sys.executable, "-m", "trustctl", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_trustctl_follows_the_servers_token_challenge(tmp_path: Path) -> None:
    issuer = Issuer()
    tokens = serve(_token_service(issuer))
    stack = start_stack(
        tmp_path / "stack",
        auth_type="token",
        auth_realm=f"{tokens.url}/token",
        auth_service=SERVICE,
        auth_issuer=ISSUER,
        auth_root_cert_bundle=str(issuer.write_bundle(tmp_path / "token-ca.pem")),
    )
    try:
        gun = "127.0.0.1:5000/tokens/app"
        ca = stack.pki.ca_cert
        digest = "sha256:" + "ab" * 32

        anonymous = _trustctl(tmp_path, stack.url, ca, None, "init", gun)
        assert anonymous.returncode == 2, anonymous.stderr
        assert anonymous.stderr.startswith("Error:") and "Traceback" not in anonymous.stderr

        run = _trustctl(tmp_path, stack.url, ca, "ci", "init", gun)
        assert run.returncode == 0, run.stderr
        run = _trustctl(
            tmp_path,
            stack.url,
            ca,
            "ci",
            "sign",
            f"{gun}:v1",
            "--digest",
            digest,
            "--size",
            "10",
            "--media-type",
            "application/vnd.oci.image.manifest.v1+json",
        )
        assert run.returncode == 0, run.stderr
        token_requests = [r for r in tokens.requests if r.path.startswith("/token")]
        assert any(r.headers.get("authorization", "").startswith("Basic ") for r in token_requests)

        root = tmp_path / "root.json"
        export = _trustctl(tmp_path, stack.url, ca, "ci", "trust", "export", gun, "-o", str(root))
        assert export.returncode == 0, export.stderr
        assert (
            _trustctl(tmp_path, stack.url, ca, "reader", "trust", "pin", gun, str(root)).returncode
            == 0
        )
        verify = _trustctl(
            tmp_path, stack.url, ca, "reader", "verify", "--no-registry-check", f"{gun}:v1"
        )
        assert verify.returncode == 0, verify.stderr
        assert digest in verify.stdout

        # the reader's token grants pull only: publishing is refused with one clear line
        denied = _trustctl(
            tmp_path,
            stack.url,
            ca,
            "reader",
            "sign",
            f"{gun}:v2",
            "--digest",
            digest,
            "--size",
            "10",
            "--media-type",
            "application/vnd.oci.image.manifest.v1+json",
        )
        assert denied.returncode != 0 and "Traceback" not in denied.stderr
        assert denied.stderr.startswith("Error:"), denied.stderr
    finally:
        stack.stop()
        tokens.httpd.shutdown()
