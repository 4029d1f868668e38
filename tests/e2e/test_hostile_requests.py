"""Hostile clients against the real server and signer processes (issue 10, rows 3, 4,
6-10, 12, 13; issue 9, case 5).

Each row of the issue is a named test here, most of them tables of attack variants;
every one failed on the code before the fix. Two module-wide stacks: one without
authentication (SQLite), one with token authentication.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import urllib3
from securesystemslib.signer import CryptoSigner, Key, Signature
from tuf.api.exceptions import RepositoryError
from tuf.api.metadata import Metadata, Root

from notary_signer.canonical import compute_keyid
from notary_signer.client import SignerClient
from notary_signer.crypto import KeyEncryptor
from notary_signer.db import make_engine
from notary_signer.errors import KeyNotFoundError
from notary_signer.keystore.sql import SQLKeyStore
from tests.client_view import HTTPSFetcher, judge
from tests.e2e.remote import Remote
from tests.procs import Stack, start_stack
from tests.tokens import ISSUER, SERVICE, Issuer, raw_header_token, repo_access, x5c_token
from tests.trustctl.support import unique_repo
from tests.tufrepo import Owner

pytestmark = pytest.mark.e2e

REALM = "https://127.0.0.1:1/token"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = start_stack(tmp_path_factory.mktemp("hostile-stack"))
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture(scope="module")
def authed(tmp_path_factory: pytest.TempPathFactory, issuer: Issuer) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("hostile-authed")
    s = start_stack(
        tmp,
        auth_type="token",
        auth_realm=REALM,
        auth_service=SERVICE,
        auth_issuer=ISSUER,
        auth_root_cert_bundle=str(issuer.write_bundle(tmp / "token-ca.pem")),
    )
    try:
        yield s
    finally:
        s.stop()


def remote(stack: Stack, prefix: str) -> Remote:
    return Remote(stack.url, f"127.0.0.1:5000/{unique_repo(prefix)}", str(stack.pki.ca_cert))


def signer_keys(stack: Stack, gun: str) -> list[str]:
    """Key ids the signer's database holds for ``gun`` (read directly, as an auditor would)."""
    store = SQLKeyStore(
        make_engine(stack.signer.env["NOTARY_SIGNER_DATABASE_URL"]), KeyEncryptor({})
    )
    return [k.keyid for role in ("timestamp", "snapshot") for k in store.list(gun, role)]


def error(resp: urllib3.BaseHTTPResponse) -> tuple[int, str, str | None]:
    err = json.loads(resp.data)["errors"][0]
    return resp.status, err["code"], (err.get("detail") or {}).get("reason")


def published(r: Remote, tag: str = "v1") -> Owner:
    owner = r.new_owner()
    owner.add_tag(tag)
    resp = r.publish({"root": owner.root_bytes(), "targets": owner.targets_bytes()})
    assert resp.status == 200, resp.data
    return owner


# --- row 3: keys compared as keys -------------------------------------------------------


def respelled(key: Key, public: str) -> Key:
    d = {"keytype": key.keytype, "scheme": key.scheme, "keyval": {"public": public}}
    return Key.from_dict(compute_keyid(Key.from_dict("0", copy.deepcopy(d))), d)


SPELLINGS: dict[str, tuple[Callable[[], CryptoSigner], Callable[[str], str]]] = {
    "ecdsa pem with a leading line of text": (
        CryptoSigner.generate_ecdsa,
        lambda p: "co-owner\n" + p,
    ),
    "ecdsa pem with CRLF line ends": (
        CryptoSigner.generate_ecdsa,
        lambda p: p.replace("\n", "\r\n"),
    ),
    "ed25519 hex with a space inside": (
        CryptoSigner.generate_ed25519,
        lambda h: h[:32] + " " + h[32:],
    ),
    "ed25519 hex in upper case": (CryptoSigner.generate_ed25519, str.upper),
}


@pytest.mark.parametrize("spelling", SPELLINGS.values(), ids=SPELLINGS.keys())
def test_one_root_key_holder_cannot_rotate_to_a_two_of_two_root_alone(
    stack: Stack, spelling: tuple[Callable[[], CryptoSigner], Callable[[str], str]]
) -> None:
    generate, respell = spelling
    r = remote(stack, "twin")
    holder = generate()
    owner = Owner(r.server_key("timestamp"), r.server_key("snapshot"), root_signers=[holder])
    owner.add_tag("v1")
    assert r.publish({"root": owner.root_bytes(), "targets": owner.targets_bytes()}).status == 200
    before = r.current()

    # root v2 claims a second root key holder: it is the holder's own key, respelled
    twin = respelled(holder.public_key, respell(holder.public_key.keyval["public"]))
    owner.bump_root()
    owner.root.add_key(twin, "root")
    owner.root.roles["root"].threshold = 2
    md = Metadata(owner.root)
    sig = md.sign(holder)
    md.signatures[twin.keyid] = Signature(twin.keyid, sig.signature)
    previous = Metadata[Root].from_bytes(before["root"]).signed
    # python-tuf counts two signatures from one key: the attack is real
    assert owner.root.get_root_verification_result(
        previous, md.signed_bytes, md.signatures
    ).verified

    resp = r.publish({"root": md.to_bytes()})
    assert error(resp) == (400, "INVALID_UPDATE", "BAD_KEYS"), resp.data
    assert r.current() == before


# --- rows 4 and 10: authorisation on the decoded name; the challenge ----------------------

SMUGGLED = {
    "timestamp key, dot double-encoded": "timestamp%252Ekey",
    "snapshot key, dot double-encoded": "snapshot%252Ekey",
    "timestamp key, k double-encoded": "timestamp.%256Bey",
    "timestamp key, dot triple-encoded": "timestamp%25252Ekey",
}


@pytest.mark.parametrize("filename", SMUGGLED.values(), ids=SMUGGLED.keys())
def test_a_pull_token_cannot_get_server_keys_through_an_encoded_name(
    authed: Stack, issuer: Issuer, filename: str
) -> None:
    gun = f"127.0.0.1:5000/{unique_repo('smuggle')}"
    pool = urllib3.PoolManager(ca_certs=str(authed.pki.ca_cert))
    pull = issuer.token(repo_access(gun, "pull"))
    resp = pool.request(
        "GET",
        f"{authed.url}/v2/{gun}/_trust/tuf/{filename}",
        headers={"Authorization": f"Bearer {pull}"},
        retries=False,
    )
    assert resp.status in (401, 404), (resp.status, resp.data)
    assert b"keyval" not in resp.data
    assert signer_keys(authed, gun) == []  # no key was created for a pull-only token
    # the plain name asks for push, as before
    plain = pool.request(
        "GET",
        f"{authed.url}/v2/{gun}/_trust/tuf/timestamp.key",
        headers={"Authorization": f"Bearer {pull}"},
        retries=False,
    )
    assert plain.status == 401


INJECTED = {
    "second realm after a quote": '127.0.0.1:5000/x",realm="https://evil.example/token',
    "escaped quote and second realm": '127.0.0.1:5000/x\\",realm="https://evil.example/token',
    "second scope after a quote": '127.0.0.1:5000/x",scope="repository:victim/app:*',
    "header break": "127.0.0.1:5000/x\r\nX-Evil: 1",
}


@pytest.mark.parametrize("gun", INJECTED.values(), ids=INJECTED.keys())
def test_the_challenge_quotes_only_validated_names(authed: Stack, gun: str) -> None:
    pool = urllib3.PoolManager(ca_certs=str(authed.pki.ca_cert))
    resp = pool.request(
        "GET", f"{authed.url}/v2/{quote(gun, safe='/:')}/_trust/tuf/root.json", retries=False
    )
    challenge = resp.headers.get("WWW-Authenticate", "")
    assert "evil" not in challenge and "victim" not in challenge, challenge
    assert challenge.count("realm=") <= 1 and "X-Evil" not in resp.headers
    # refused as a name (400 INVALID_GUN), or matching no route at all (401, no scope)
    assert error(resp)[:2] in ((400, "INVALID_GUN"), (401, "UNAUTHORIZED")), resp.data


# --- row 6 and row 9: token certificates -------------------------------------------------

NOW = datetime.now(UTC)
OUT_OF_DATE = {
    "x5c certificate expired yesterday": (NOW - timedelta(days=30), NOW - timedelta(days=1)),
    "x5c certificate valid from tomorrow": (NOW + timedelta(days=1), NOW + timedelta(days=30)),
    "x5c certificate expired ten minutes ago": (
        NOW - timedelta(days=1),
        NOW - timedelta(minutes=10),
    ),
}


@pytest.mark.parametrize("validity", OUT_OF_DATE.values(), ids=OUT_OF_DATE.keys())
def test_token_certificates_outside_their_validity_are_refused(
    authed: Stack, issuer: Issuer, validity: tuple[datetime, datetime]
) -> None:
    pool = urllib3.PoolManager(ca_certs=str(authed.pki.ca_cert))
    gun = f"127.0.0.1:5000/{unique_repo('x5c')}"
    url = f"{authed.url}/v2/{gun}/_trust/tuf/root.json"

    def status(token: str) -> int:
        return pool.request(
            "GET", url, headers={"Authorization": f"Bearer {token}"}, retries=False
        ).status

    valid = x5c_token(
        issuer,
        repo_access(gun, "pull"),
        not_before=NOW - timedelta(days=1),
        not_after=NOW + timedelta(days=1),
    )
    assert status(valid) == 404  # authorised: there is just nothing stored yet
    not_before, not_after = validity
    stale = x5c_token(issuer, repo_access(gun, "pull"), not_before=not_before, not_after=not_after)
    assert status(stale) == 401


BAD_HEADERS: dict[str, dict[str, Any]] = {
    "x5c is a string": {
        "x5c": "MIIBkTCB+wIJAKHBfpegPjMCMA0GCSqGSIb3DQEBCwUAMBExDzANBgNVBAMMBnRlc3RjYTAe"
    },
    "x5c is an object": {"x5c": {"0": "MIIB"}},
    "x5c is a list of numbers": {"x5c": [1, 2]},
    "x5c is an empty list": {"x5c": []},
    "x5c is not base64": {"x5c": ["***"]},
    "x5c is not a certificate": {"x5c": ["AAAA"]},
    "kid is a list": {"kid": ["AAAA"]},
    "kid is an object": {"kid": {"a": 1}},
}


@pytest.mark.parametrize("header", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
def test_malformed_token_headers_get_401_without_a_traceback(
    authed: Stack, issuer: Issuer, header: dict[str, Any]
) -> None:
    pool = urllib3.PoolManager(ca_certs=str(authed.pki.ca_cert))
    gun = f"127.0.0.1:5000/{unique_repo('header')}"
    token = raw_header_token(issuer, repo_access(gun, "pull"), header)
    resp = pool.request(
        "GET",
        f"{authed.url}/v2/{gun}/_trust/tuf/root.json",
        headers={"Authorization": f"Bearer {token}"},
        retries=False,
    )
    assert error(resp)[:2] == (401, "UNAUTHORIZED"), resp.data
    assert "Traceback" not in authed.logs()


CHANGE_IDS = {
    "change_id 2**64": str(2**64),
    "change_id 2**63": str(2**63),
    "change_id -(2**64)": str(-(2**64)),
    "change_id of 400 digits": "9" * 400,
}


@pytest.mark.parametrize("change_id", CHANGE_IDS.values(), ids=CHANGE_IDS.keys())
def test_change_feed_ids_beyond_64_bits_get_400(stack: Stack, change_id: str) -> None:
    pool = urllib3.PoolManager(ca_certs=str(stack.pki.ca_cert))
    for path in ("/v2/_trust/changefeed", "/v2/127.0.0.1:5000/any/app/_trust/changefeed"):
        resp = pool.request("GET", f"{stack.url}{path}?change_id={change_id}", retries=False)
        assert error(resp)[:2] == (400, "INVALID_PARAMETERS"), resp.data
    assert "Traceback" not in stack.logs()


# --- row 7: pending k-of-n metadata ------------------------------------------------------------


def test_a_keyless_push_user_cannot_strip_a_pending_co_signature(stack: Stack) -> None:
    r = remote(stack, "pending")
    owner = r.new_owner()
    team = [CryptoSigner.generate_ecdsa() for _ in range(3)]
    alice, bob, carol = team
    owner.delegate("targets/releases", team, threshold=3)
    assert r.publish({"root": owner.root_bytes(), "targets": owner.targets_bytes()}).status == 200
    owner.add_tag("v1", role="targets/releases")
    url = f"{stack.url}/v2/{r.gun}/_trust/pending/targets%2Freleases.json"
    for signer in (alice, bob):
        assert (
            r.pool.request(
                "PUT", url, body=owner.delegated_bytes("targets/releases", [signer])
            ).status
            == 200
        )

    waiting = Metadata.from_bytes(r.pool.request("GET", url).data)
    assert set(waiting.signatures) == {alice.public_key.keyid, bob.public_key.keyid}
    forged = copy.deepcopy(waiting)
    forged.signatures[bob.public_key.keyid] = Signature(bob.public_key.keyid, "00" * 64)
    resp = r.pool.request("PUT", url, body=forged.to_bytes())
    assert error(resp) == (400, "INVALID_UPDATE", "BAD_TARGETS"), resp.data
    assert b"may be an attack" in resp.data

    kept = Metadata.from_bytes(r.pool.request("GET", url).data)
    assert kept.signatures == waiting.signatures  # bob's valid signature is still there
    kept.sign(carol, append=True)
    assert r.publish({"targets/releases": kept.to_bytes()}).status == 200


# --- row 8: versions ------------------------------------------------------------------------------

TOO_LARGE = {
    "2**31, past PostgreSQL's integer": 2**31,
    "10**10, eleven digits: unfetchable by number": 10**10,
    "2**63, past every integer column": 2**63,
}


@pytest.mark.parametrize("version", TOO_LARGE.values(), ids=TOO_LARGE.keys())
def test_versions_no_store_or_client_can_follow_are_refused(stack: Stack, version: int) -> None:
    r = remote(stack, "versions")
    owner = published(r)
    owner.targets.version = 2**31 - 1  # the largest: stored and fetched by number
    owner.add_tag("v2")
    owner.targets.version = 2**31 - 1
    largest = owner.targets_bytes()
    assert r.publish({"targets": largest}).status == 200
    assert r.get(f"{2**31 - 1}.targets.json").data == largest
    before = r.current()

    owner.targets.version = version
    resp = r.publish({"targets": owner.targets_bytes()})
    assert error(resp)[:2] == (400, "VERSION_TOO_LARGE"), resp.data
    assert r.current() == before
    assert r.get(f"{version}.targets.json").status in (400, 404)


# --- row 12: target names ---------------------------------------------------------------------------

LOOK_ALIKE_TAGS = {
    "U+2028 line separator": "v1\u2028",
    "no-break space": "v1\u00a0",
    "full-width v1": "\uff56\uff11",
    "Cyrillic e in release": "r\u0435lease",
    "Cyrillic a among Latin letters in a path": "team/\u0430pp",
}


@pytest.mark.parametrize("tag", LOOK_ALIKE_TAGS.values(), ids=LOOK_ALIKE_TAGS.keys())
def test_target_names_that_look_like_other_names_are_refused(stack: Stack, tag: str) -> None:
    r = remote(stack, "names")
    owner = published(r)
    before = r.current()
    owner.add_tag(tag)
    resp = r.publish({"targets": owner.targets_bytes()})
    assert error(resp) == (400, "INVALID_UPDATE", "BAD_TARGETS"), resp.data
    assert r.current() == before


# --- issue 9, case 5: a deleted repository's online keys ----------------------------------------------


def test_deleting_a_repository_retires_its_online_keys(stack: Stack, tmp_path: Path) -> None:
    r = remote(stack, "deleted")
    owner = published(r)
    pinned = owner.root_bytes()
    old = signer_keys(stack, r.gun)
    assert len(old) == 2
    fetcher = HTTPSFetcher(str(stack.pki.ca_cert))
    assert judge(tmp_path / "deployer", stack.url, r.gun, "v1", fetcher, pinned) is not None

    assert r.pool.request("DELETE", r.tuf_url()).status == 200
    assert signer_keys(stack, r.gun) == []
    client = SignerClient(
        stack.signer.health_url.rsplit("/", 1)[0],
        ca_file=str(stack.pki.ca_cert),
        cert_file=str(stack.pki.client_cert),
        key_file=str(stack.pki.client_key),
    )
    with pytest.raises(KeyNotFoundError):  # the old keys can no longer sign
        client.sign_payload(old[0], r.gun, "timestamp", b"{}")

    # someone else creates the name: new online keys, and the old deployer refuses
    newcomer = published(r)
    new_keys = {newcomer.timestamp_key.keyid, newcomer.snapshot_key.keyid}  # type: ignore[union-attr]
    assert new_keys.isdisjoint(old)
    with pytest.raises(RepositoryError):
        judge(tmp_path / "deployer", stack.url, r.gun, "v1", fetcher, None)


# --- row 13: health (last: it stops the signer of the token stack) --------------------------------------


def test_health_details_only_for_an_admin_token(authed: Stack, issuer: Issuer) -> None:
    pool = urllib3.PoolManager(ca_certs=str(authed.pki.ca_cert))
    url = f"{authed.url}/_notary_server/health"
    assert json.loads(pool.request("GET", url).data) == {"status": "ok"}
    signer_url = authed.signer.health_url.rsplit("/", 1)[0]
    authed.signer.stop()
    try:
        anonymous = pool.request("GET", url, retries=False)
        assert anonymous.status == 503
        assert json.loads(anonymous.data) == {"status": "unavailable"}
        puller = pool.request(
            "GET",
            url,
            retries=False,
            headers={
                "Authorization": f"Bearer {issuer.token(repo_access('127.0.0.1:5000/a/b', 'pull', 'push', '*'))}"
            },
        )
        assert json.loads(puller.data) == {"status": "unavailable"}
        admin = issuer.token([{"type": "registry", "name": "catalog", "actions": ["*"]}])
        detailed = pool.request(
            "GET", url, retries=False, headers={"Authorization": f"Bearer {admin}"}
        )
        body = json.loads(detailed.data)
        assert detailed.status == 503 and body["status"] == "unavailable"
        assert (
            "signer" in body["problems"] and signer_url.split("//")[1] in body["problems"]["signer"]
        )
        assert signer_url.split("//")[1] not in anonymous.data.decode() + puller.data.decode()
    finally:
        authed.signer.start()
