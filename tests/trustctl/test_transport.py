"""HTTP transport: an explicit CA wins over the environment, auth challenges, limits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tuf.api.exceptions import DownloadHTTPError

from notary_signer.devcerts import ensure_dev_pki
from tests.trustctl.httpd import Reply, Request, Server, serve
from trustctl.credentials import Credentials
from trustctl.fetcher import ServerHTTPError, TransportFetcher
from trustctl.transport import HttpTransport, TransportError, _safe_for_secrets, parse_challenge

CA_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


@dataclass
class TlsServer:
    server: Server
    ca: Path
    other_ca: Path


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    pki = ensure_dev_pki(tmp_path_factory.mktemp("pki"))
    other = ensure_dev_pki(tmp_path_factory.mktemp("other-pki"))
    server = serve(
        lambda req: Reply(200, {"Content-Type": "application/json"}, b"{}"),
        cert=pki.server_cert,
        key=pki.server_key,
    )
    yield TlsServer(server, pki.ca_cert, other.ca_cert)
    server.stop()


def test_explicit_ca_works_while_the_environment_points_elsewhere(
    tls_server: TlsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in CA_VARIABLES:  # the machine's bundle, which does not know our CA
        monkeypatch.setenv(name, "/etc/ssl/certs/ca-certificates.crt")
    resp = HttpTransport(ca_file=str(tls_server.ca)).request("GET", f"{tls_server.server.url}/v2/")
    assert resp.status == 200


def test_explicit_ca_wins_even_when_the_environment_would_trust_the_server(
    tls_server: TlsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in CA_VARIABLES:  # the environment trusts the server's CA...
        monkeypatch.setenv(name, str(tls_server.ca))
    transport = HttpTransport(
        ca_file=str(tls_server.other_ca), retries=0
    )  # ...but we said: only this CA
    with pytest.raises(TransportError) as info:
        transport.request("GET", f"{tls_server.server.url}/v2/")
    assert info.value.tls


def test_without_a_ca_an_unknown_server_fails_with_a_tls_error(
    tls_server: TlsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in CA_VARIABLES:
        monkeypatch.setenv(name, "/etc/ssl/certs/ca-certificates.crt")
    with pytest.raises(TransportError) as info:
        HttpTransport(retries=0).request("GET", f"{tls_server.server.url}/v2/")
    assert info.value.tls and "TLS error" in info.value.reason


def test_fetcher_raises_download_http_error_with_the_server_code() -> None:
    body = json.dumps({"errors": [{"code": "METADATA_NOT_FOUND", "message": "no"}]}).encode()
    server = serve(lambda req: Reply(404, {"Content-Type": "application/json"}, body))
    try:
        fetcher = TransportFetcher(HttpTransport())
        with pytest.raises(DownloadHTTPError) as info:
            fetcher.fetch(f"{server.url}/v2/x/_trust/tuf/2.root.json")
        assert info.value.status_code == 404
        assert (
            isinstance(info.value, ServerHTTPError)
            and info.value.server_code == "METADATA_NOT_FOUND"
        )
    finally:
        server.stop()


def test_bearer_challenge_fetches_a_token_once_per_scope() -> None:
    token_calls: list[Request] = []

    def token(req: Request) -> Reply:
        token_calls.append(req)
        return Reply(200, {"Content-Type": "application/json"}, b'{"token": "T0K3N"}')

    tokens = serve(token)

    def api(req: Request) -> Reply:
        if req.headers.get("authorization") == "Bearer T0K3N":
            return Reply(200, {}, b"ok")
        challenge = (
            f'Bearer realm="{tokens.url}/token",service="notary",scope="repository:r/a:pull"'
        )
        return Reply(401, {"WWW-Authenticate": challenge}, b"")

    server = serve(api)
    try:
        transport = HttpTransport(credentials=lambda host: Credentials("ci", "pw"))
        assert (
            transport.request("GET", f"{server.url}/v2/r/a/x", scope="repository:r/a:pull").data
            == b"ok"
        )
        assert (
            transport.request("GET", f"{server.url}/v2/r/a/y", scope="repository:r/a:pull").data
            == b"ok"
        )
        assert len(token_calls) == 1
        assert "scope=repository%3Ar%2Fa%3Apull" in token_calls[0].path
        assert token_calls[0].headers["authorization"].startswith("Basic ")
    finally:
        server.stop()
        tokens.stop()


def test_bodies_are_bounded() -> None:
    server = serve(lambda req: Reply(200, {}, b"x" * 10_000))
    try:
        resp = HttpTransport().request("GET", f"{server.url}/big", max_bytes=1000)
        assert resp.truncated and len(resp.data) == 1000
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("header", "scheme", "params"),
    [
        (
            'Bearer realm="https://auth.io/token",service="reg",scope="repository:a/b:pull"',
            "bearer",
            {"realm": "https://auth.io/token", "service": "reg", "scope": "repository:a/b:pull"},
        ),
        ('Basic realm="Registry Realm"', "basic", {"realm": "Registry Realm"}),
        ("Bearer realm=https://x/t,service=s", "bearer", {"realm": "https://x/t", "service": "s"}),
        (
            'Bearer realm="https://x/t",scope="repository:a:pull repository:b:pull"',
            "bearer",
            {"realm": "https://x/t", "scope": "repository:a:pull repository:b:pull"},
        ),
    ],
)
def test_parse_challenge(header: str, scheme: str, params: dict[str, str]) -> None:
    challenge = parse_challenge(header)
    assert challenge.scheme == scheme
    assert dict(challenge.params) == params


def test_credentials_go_only_over_https_or_loopback() -> None:
    assert _safe_for_secrets("https://auth.example.com/token")
    assert _safe_for_secrets("http://127.0.0.1:5001/token")
    assert not _safe_for_secrets("http://auth.example.com/token")
