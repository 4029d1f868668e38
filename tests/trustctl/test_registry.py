"""The Registry API v2 client against a real docker-registry (anonymous, basic, bearer)."""

from __future__ import annotations

import base64
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.registry import (
    OCI_INDEX,
    OCI_MANIFEST,
    RegistryProcess,
    basic_auth,
    free_port,
    push_image,
    push_index,
    start_registry,
)
from tests.secrets import remember
from tests.tokens import ISSUER, SERVICE, Issuer
from tests.trustctl.httpd import Reply, Request, forward, serve
from tests.trustctl.support import unique_repo
from trustctl.credentials import Credentials, CredentialStore
from trustctl.errors import (
    EXIT_NETWORK,
    EXIT_USAGE,
    AuthenticationError,
    ManifestNotFoundError,
    RegistryProtocolError,
    RegistryUnavailableError,
)
from trustctl.reference import parse_reference
from trustctl.registry import MANIFEST_MEDIA_TYPES, RegistryClient
from trustctl.transport import HttpTransport


def client(**transport: object) -> RegistryClient:
    return RegistryClient(transport=HttpTransport(**transport))  # type: ignore[arg-type]


def test_head_resolves_an_oci_manifest(registry: RegistryProcess) -> None:
    repo = unique_repo()
    digest, size, _media_type = push_image(registry.url, repo, "v1", b"layer one")
    desc = client().resolve(parse_reference(f"{registry.host}/{repo}:v1"))
    assert (desc.digest, desc.size, desc.media_type) == (digest, size, OCI_MANIFEST)


def test_an_index_resolves_to_the_index_digest_not_a_platform(registry: RegistryProcess) -> None:
    repo = unique_repo()
    digest, size, _ = push_index(
        registry.url, repo, "multi", {"linux/amd64": b"a", "linux/arm64": b"b"}
    )
    desc = client().resolve(parse_reference(f"{registry.host}/{repo}:multi"))
    assert (desc.digest, desc.size, desc.media_type) == (digest, size, OCI_INDEX)


def test_resolve_by_digest_and_has_manifest(registry: RegistryProcess) -> None:
    repo = unique_repo()
    digest, size, _ = push_image(registry.url, repo, "v1", b"by digest")
    c = client()
    ref = parse_reference(f"{registry.host}/{repo}@{digest}")
    assert c.resolve(ref).size == size
    assert c.has_manifest(ref, digest)
    assert not c.has_manifest(ref, "sha256:" + "0" * 64)


def test_head_sends_an_explicit_accept_for_oci_and_docker_types(registry: RegistryProcess) -> None:
    proxy = serve(forward(registry.url))
    try:
        repo = unique_repo()
        push_image(registry.url, repo, "v1", b"accept")
        host = urlsplit(proxy.url).netloc
        client().resolve(parse_reference(f"{host}/{repo}:v1"))
        head = next(r for r in proxy.requests if r.method == "HEAD" and "/manifests/" in r.path)
        accepted = [t.strip() for t in head.headers["accept"].split(",")]
        assert set(accepted) == set(MANIFEST_MEDIA_TYPES)
    finally:
        proxy.stop()


def test_missing_tag_is_manifest_not_found(registry: RegistryProcess) -> None:
    repo = unique_repo()
    push_image(registry.url, repo, "v1", b"x")
    with pytest.raises(ManifestNotFoundError, match="no manifest for"):
        client().resolve(parse_reference(f"{registry.host}/{repo}:nope"))


def test_registry_down_is_a_network_error() -> None:
    with pytest.raises(RegistryUnavailableError) as info:
        client(retries=0).resolve(parse_reference(f"127.0.0.1:{free_port()}/app:v1"))
    assert info.value.exit_code == EXIT_NETWORK
    assert "connection refused" in info.value.message


def test_head_without_digest_header_falls_back_to_get_and_hashes(registry: RegistryProcess) -> None:
    repo = unique_repo()
    digest, size, media_type = push_image(registry.url, repo, "v1", b"fallback")
    proxy = serve(forward(registry.url, drop=("docker-content-digest",)))
    try:
        host = urlsplit(proxy.url).netloc
        desc = client().resolve(parse_reference(f"{host}/{repo}:v1"))
        assert (desc.digest, desc.size, desc.media_type) == (digest, size, media_type)
        assert [r.method for r in proxy.requests if "/manifests/" in r.path] == ["HEAD", "GET"]
    finally:
        proxy.stop()


def test_a_digest_header_that_disagrees_with_the_body_is_refused(registry: RegistryProcess) -> None:
    repo = unique_repo()
    push_image(registry.url, repo, "v1", b"liar")
    lie = "sha256:" + "1" * 64
    proxy = serve(
        forward(
            registry.url,
            drop=("docker-content-digest",),
            fake_on_get={"Docker-Content-Digest": lie},
        )
    )
    try:
        host = urlsplit(proxy.url).netloc
        with pytest.raises(RegistryProtocolError, match="may be an attack"):
            client().resolve(parse_reference(f"{host}/{repo}:v1"))
    finally:
        proxy.stop()


# --- basic auth (htpasswd) -------------------------------------------------------------


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # bcrypt through libxcrypt; only the test needs it

        hashed = crypt.crypt("s3cret", crypt.mksalt(crypt.METHOD_BLOWFISH))
    work = tmp_path_factory.mktemp("basic-registry")
    htpasswd = work / "htpasswd"
    htpasswd.write_text(f"ci:{hashed}\n")
    reg = start_registry(work, auth={"htpasswd": {"realm": "test-realm", "path": str(htpasswd)}})
    yield reg
    reg.stop()


def test_basic_auth_with_credentials_from_the_environment(basic_registry: RegistryProcess) -> None:
    repo = unique_repo()
    digest, _, _ = push_image(
        basic_registry.url, repo, "v1", b"basic", headers=basic_auth("ci", "s3cret")
    )
    store = CredentialStore(
        environ={
            "TRUSTCTL_REGISTRY_USERNAME": "ci",
            "TRUSTCTL_REGISTRY_PASSWORD": remember("s3cret"),
        }
    )
    desc = client(credentials=store.lookup).resolve(
        parse_reference(f"{basic_registry.host}/{repo}:v1")
    )
    assert desc.digest == digest


def test_basic_auth_with_credentials_from_docker_config(
    basic_registry: RegistryProcess, tmp_path: Path
) -> None:
    repo = unique_repo()
    digest, _, _ = push_image(
        basic_registry.url, repo, "v1", b"cfg", headers=basic_auth("ci", "s3cret")
    )
    config = tmp_path / "config.json"
    auth = base64.b64encode(b"ci:s3cret").decode()
    config.write_text(json.dumps({"auths": {basic_registry.host: {"auth": auth}}}))
    store = CredentialStore(environ={}, docker_config=config)
    desc = client(credentials=store.lookup).resolve(
        parse_reference(f"{basic_registry.host}/{repo}:v1")
    )
    assert desc.digest == digest


def test_no_or_wrong_credentials_is_a_usage_error_with_a_login_hint(
    basic_registry: RegistryProcess,
) -> None:
    ref = parse_reference(f"{basic_registry.host}/{unique_repo()}:v1")
    with pytest.raises(AuthenticationError) as info:
        client().resolve(ref)
    assert info.value.exit_code == EXIT_USAGE
    assert "docker login" in (info.value.hint or "")
    wrong = CredentialStore(
        environ={"TRUSTCTL_REGISTRY_USERNAME": "ci", "TRUSTCTL_REGISTRY_PASSWORD": "nope"}
    )
    with pytest.raises(AuthenticationError):
        client(credentials=wrong.lookup).resolve(ref)


# --- bearer tokens (the Docker registry token flow) ---------------------------------------


@pytest.fixture(scope="module")
def token_registry(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RegistryProcess, Issuer, list[Request]]]:
    issuer = Issuer()
    work = tmp_path_factory.mktemp("token-registry")
    bundle = issuer.write_bundle(work / "issuer.pem")

    def token_service(req: Request) -> Reply:
        if req.headers.get("authorization") != "Basic " + base64.b64encode(b"ci:s3cret").decode():
            return Reply(
                401, {"Content-Type": "application/json"}, b'{"details":"bad credentials"}'
            )
        query = parse_qs(urlsplit(req.path).query)
        access = []
        for scope in query.get("scope", []):
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        body = json.dumps({"token": issuer.token(access, audience=query["service"][0])}).encode()
        return Reply(200, {"Content-Type": "application/json"}, body)

    tokens = serve(token_service)
    auth = {
        "token": {
            "realm": f"{tokens.url}/token",
            "service": SERVICE,
            "issuer": ISSUER,
            "rootcertbundle": str(bundle),
        }
    }
    reg = start_registry(work, auth=auth)
    yield reg, issuer, tokens.requests
    reg.stop()
    tokens.stop()


def test_bearer_token_flow_follows_the_challenge(
    token_registry: tuple[RegistryProcess, Issuer, list[Request]],
) -> None:
    reg, issuer, token_requests = token_registry
    repo = unique_repo()
    push_token = issuer.token([{"type": "repository", "name": repo, "actions": ["pull", "push"]}])
    digest, _, _ = push_image(
        reg.url, repo, "v1", b"bearer", headers={"Authorization": f"Bearer {push_token}"}
    )
    creds = lambda host: Credentials("ci", "s3cret")
    desc = client(credentials=creds).resolve(parse_reference(f"{reg.host}/{repo}:v1"))
    assert desc.digest == digest
    asked = parse_qs(urlsplit(token_requests[-1].path).query)
    assert asked["service"] == [SERVICE]
    assert asked["scope"] == [f"repository:{repo}:pull"]


def test_bearer_without_credentials_is_refused_clearly(
    token_registry: tuple[RegistryProcess, Issuer, list[Request]],
) -> None:
    reg, _, _ = token_registry
    with pytest.raises(AuthenticationError, match="refused access"):
        client().resolve(parse_reference(f"{reg.host}/{unique_repo()}:v1"))


# --- transport security ----------------------------------------------------------------------


def test_loopback_registry_uses_plain_http_without_a_flag(registry: RegistryProcess) -> None:
    c = client()
    assert c.base_url(registry.host) == f"http://{registry.host}"


def test_non_loopback_registry_needs_https_unless_listed_insecure() -> None:
    warned: list[str] = []
    c = RegistryClient(
        transport=HttpTransport(), insecure_registries=["10.1.2.3:5000"], warn=warned.append
    )
    assert c.base_url("registry.example.com") == "https://registry.example.com"
    assert c.base_url("10.1.2.3:5000") == "http://10.1.2.3:5000"
    assert warned and "plain HTTP" in warned[0]
    assert c.base_url("docker.io") == "https://registry-1.docker.io"
