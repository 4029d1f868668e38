"""Token authentication (Docker registry token specification) and token misuse."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest

from notary_server.app import create_app
from notary_server.auth import TokenAuth
from tests.conftest import GUN
from tests.server.helpers import error_code
from tests.tokens import ISSUER, REALM, SERVICE, Issuer, repo_access


@pytest.fixture
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture
def authed(service, issuer, tmp_path: Path):
    auth = TokenAuth.from_bundle(
        str(issuer.write_bundle(tmp_path / "bundle.pem")),
        realm=REALM,
        service=SERVICE,
        issuer=ISSUER,
        clock=service.clock,
    )
    app = create_app(service=service, auth=auth)
    with app.test_client() as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_anonymous_requests_get_a_challenge_naming_the_scope(authed, keyservice):
    resp = authed.get(f"/v2/{GUN}/_trust/tuf/timestamp.key")
    assert error_code(resp)[:2] == (401, "UNAUTHORIZED")
    challenge = resp.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert f'realm="{REALM}"' in challenge and f'service="{SERVICE}"' in challenge
    assert f'scope="repository:{GUN}:push,pull"' in challenge
    # no signer key is ever created for an unauthenticated request
    assert keyservice.list_keys(GUN, "timestamp") == []
    assert authed.get("/v2/").status_code == 401
    assert authed.get("/_notary_server/health").status_code == 200


def test_a_push_token_publishes_and_a_pull_token_reads(authed, issuer, make_owner):
    push = bearer(issuer.token(repo_access(GUN, "push", "pull")))
    pull = bearer(issuer.token(repo_access(GUN, "pull")))
    assert authed.get("/v2/", headers=pull).status_code == 200
    assert authed.get(f"/v2/{GUN}/_trust/tuf/timestamp.key", headers=push).status_code == 200
    owner = make_owner()
    owner.add_tag("v1")
    files = {"root": owner.root_bytes(), "targets": owner.targets_bytes()}
    import io

    data = {"files": [(io.BytesIO(raw), role) for role, raw in files.items()]}
    resp = authed.post(
        f"/v2/{GUN}/_trust/tuf/", data=data, content_type="multipart/form-data", headers=push
    )
    assert resp.status_code == 200, resp.data
    assert authed.get(f"/v2/{GUN}/_trust/tuf/targets.json", headers=pull).status_code == 200


def test_rs256_tokens_and_x5c_chains_are_accepted(service, tmp_path: Path):
    issuer = Issuer("RS256")
    auth = TokenAuth.from_bundle(
        str(issuer.write_bundle(tmp_path / "b.pem")),
        realm=REALM,
        service=SERVICE,
        issuer=ISSUER,
        clock=service.clock,
    )
    app = create_app(service=service, auth=auth)
    import base64

    from cryptography.hazmat.primitives import serialization

    x5c = [base64.b64encode(issuer.cert.public_bytes(serialization.Encoding.DER)).decode()]
    with app.test_client() as c:
        assert c.get("/v2/", headers=bearer(issuer.token([]))).status_code == 200
        token = jwt.encode(
            {"iss": ISSUER, "aud": SERVICE, "exp": int(time.time()) + 60, "access": []},
            issuer.key,
            algorithm="RS256",
            headers={"x5c": x5c},
        )
        assert c.get("/v2/", headers=bearer(token)).status_code == 200


@dataclass
class Misuse:
    token: Callable[[Issuer], str]
    request: str  # "push", "read" or "delete"


def _unsigned_token(issuer: Issuer) -> str:
    header = jwt.utils.base64url_encode(b'{"alg":"none","typ":"JWT"}').decode()
    body = jwt.utils.base64url_encode(
        f'{{"iss":"{ISSUER}","aud":"{SERVICE}","exp":{int(time.time()) + 60},'
        f'"access":[{{"type":"repository","name":"{GUN}","actions":["push","pull","*"]}}]}}'.encode()
    ).decode()
    return f"{header}.{body}."


def _hs256_confusion(issuer: Issuer) -> str:
    """The classic algorithm confusion: HMAC keyed with the verifier's public key."""
    import hashlib
    import hmac
    import json

    from cryptography.hazmat.primitives import serialization

    secret = issuer.cert.public_bytes(serialization.Encoding.PEM)
    claims = {
        "iss": ISSUER,
        "aud": SERVICE,
        "exp": int(time.time()) + 60,
        "access": repo_access(GUN, "push", "pull"),
    }
    enc = jwt.utils.base64url_encode
    signing_input = enc(b'{"alg":"HS256","typ":"JWT"}') + b"." + enc(json.dumps(claims).encode())
    sig = enc(hmac.new(secret, signing_input, hashlib.sha256).digest())
    return (signing_input + b"." + sig).decode()


MISUSE: dict[str, Misuse] = {
    "pull token used to push": Misuse(lambda i: i.token(repo_access(GUN, "pull")), "push"),
    "token for another repository": Misuse(
        lambda i: i.token(repo_access("127.0.0.1:5000/other", "push", "pull")), "push"
    ),
    "wrong audience": Misuse(
        lambda i: i.token(repo_access(GUN, "push", "pull"), audience="registry"), "push"
    ),
    "wrong issuer": Misuse(
        lambda i: i.token(repo_access(GUN, "push", "pull"), issuer="evil"), "push"
    ),
    "expired token": Misuse(lambda i: i.token(repo_access(GUN, "pull"), expires_in=-120), "read"),
    "token not valid yet": Misuse(
        lambda i: i.token(repo_access(GUN, "pull"), not_before=time.time() + 600), "read"
    ),
    "token signed by an unknown key": Misuse(
        lambda i: Issuer().token(repo_access(GUN, "push", "pull")), "push"
    ),
    "unknown key id": Misuse(
        lambda i: i.token(repo_access(GUN, "pull"), headers={"kid": "AAAA:BBBB"}), "read"
    ),
    "unsigned token (alg none)": Misuse(_unsigned_token, "push"),
    "HS256 with the public key as secret": Misuse(_hs256_confusion, "push"),
    "push token used to delete": Misuse(
        lambda i: i.token(repo_access(GUN, "push", "pull")), "delete"
    ),
    "garbage token": Misuse(lambda i: "not.a.jwt", "read"),
}


@pytest.mark.parametrize("case", MISUSE.values(), ids=MISUSE.keys())
def test_token_misuse_is_refused_and_changes_nothing(
    case: Misuse, authed, issuer, make_owner, service
) -> None:
    owner = make_owner()
    owner.add_tag("v1")
    admin = bearer(issuer.token(repo_access(GUN, "*")))
    import io

    def post(files: dict[str, bytes], headers: dict[str, str]) -> Any:
        data = {"files": [(io.BytesIO(raw), role) for role, raw in files.items()]}
        return authed.post(
            f"/v2/{GUN}/_trust/tuf/", data=data, content_type="multipart/form-data", headers=headers
        )

    assert (
        post({"root": owner.root_bytes(), "targets": owner.targets_bytes()}, admin).status_code
        == 200
    )
    before = {
        r: authed.get(f"/v2/{GUN}/_trust/tuf/{r}.json", headers=admin).data
        for r in ("root", "targets", "snapshot", "timestamp")
    }

    token = bearer(case.token(issuer))
    if case.request == "push":
        owner.add_tag("v2")
        resp = post({"targets": owner.targets_bytes()}, token)
    elif case.request == "delete":
        resp = authed.delete(f"/v2/{GUN}/_trust/tuf/", headers=token)
    else:
        resp = authed.get(f"/v2/{GUN}/_trust/tuf/targets.json", headers=token)

    assert error_code(resp)[:2] == (401, "UNAUTHORIZED"), resp.data
    assert resp.headers["WWW-Authenticate"].startswith("Bearer realm=")
    after = {r: authed.get(f"/v2/{GUN}/_trust/tuf/{r}.json", headers=admin).data for r in before}
    assert after == before


def _x5c_at(issuer: Issuer, not_before, not_after) -> dict[str, str]:
    from tests.tokens import x5c_token

    return bearer(
        x5c_token(issuer, repo_access(GUN, "pull"), not_before=not_before, not_after=not_after)
    )


#: Certificate validity against the injected clock, with the 30 s leeway (issue 10, row 6).
VALIDITY = {
    "valid now": (-3600, 3600, 404),
    "expired 20 s ago: inside the leeway": (-3600, -20, 404),
    "expired 60 s ago": (-3600, -60, 401),
    "valid in 20 s: inside the leeway": (20, 3600, 404),
    "valid in 60 s": (60, 3600, 401),
}


@pytest.mark.parametrize("case", VALIDITY.values(), ids=VALIDITY.keys())
def test_x5c_certificates_must_be_valid_at_the_servers_clock(authed, issuer, clock, case) -> None:
    from datetime import timedelta

    start, end, status = case
    headers = _x5c_at(
        issuer, clock.now + timedelta(seconds=start), clock.now + timedelta(seconds=end)
    )
    assert authed.get(f"/v2/{GUN}/_trust/tuf/root.json", headers=headers).status_code == status


def test_the_challenge_never_carries_an_unvalidated_name(authed) -> None:
    resp = authed.get('/v2/127.0.0.1:5000/x",realm="https:%2F%2Fevil/_trust/tuf/root.json')
    assert error_code(resp)[:2] == (400, "INVALID_GUN")
    assert "WWW-Authenticate" not in resp.headers


def test_a_double_encoded_key_name_is_not_a_key_request(authed, issuer, keyservice) -> None:
    pull = bearer(issuer.token(repo_access(GUN, "pull")))
    resp = authed.get(f"/v2/{GUN}/_trust/tuf/timestamp%252Ekey", headers=pull)
    assert resp.status_code == 404 and keyservice.list_keys(GUN, "timestamp") == []


def test_health_details_go_to_admin_tokens_only(service, issuer, tmp_path: Path) -> None:
    from tests.server.test_freshness import SignerDown

    service.keys = SignerDown(service.keys)
    auth = TokenAuth.from_bundle(
        str(issuer.write_bundle(tmp_path / "b.pem")),
        realm=REALM,
        service=SERVICE,
        issuer=ISSUER,
        clock=service.clock,
    )
    for app in (create_app(service=service), create_app(service=service, auth=auth)):
        with app.test_client() as c:
            resp = c.get("/_notary_server/health")
            assert (resp.status_code, resp.get_json()) == (503, {"status": "unavailable"})
    admin = bearer(issuer.token([{"type": "registry", "name": "catalog", "actions": ["*"]}]))
    with create_app(service=service, auth=auth).test_client() as c:
        body = c.get("/_notary_server/health", headers=admin).get_json()
        assert (
            body["status"] == "unavailable" and "connection refused" in body["problems"]["signer"]
        )
