"""Registry HTTP API v2 client: resolve a tag to its manifest digest, size and type.

``resolve()`` sends ``HEAD /v2/<name>/manifests/<tag>`` with an explicit ``Accept``
for OCI and Docker manifests and indexes, and reads ``Docker-Content-Digest``,
``Content-Length`` and ``Content-Type``. When the registry leaves any of them out it
falls back to ``GET`` and hashes the body itself (and refuses a digest header that
disagrees with the body).

Transport security follows Docker: a registry on a loopback address may be reached
over plain HTTP without a flag (HTTPS is tried first); any other registry needs
HTTPS unless it is listed as insecure, which is announced with a warning.

Example:
    >>> client = RegistryClient(transport=HttpTransport())  # doctest: +SKIP
    >>> client.resolve(parse_reference("127.0.0.1:5000/library/app:v1"))  # doctest: +SKIP
    ManifestDescriptor(digest='sha256:...', size=528, media_type='application/vnd.oci.image.manifest.v1+json')
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from trustctl.errors import (
    AuthenticationError,
    ManifestNotFoundError,
    RegistryProtocolError,
    RegistryUnavailableError,
)
from trustctl.reference import ImageRef, is_digest, is_loopback_host, split_host_port
from trustctl.transport import Response, Transport, TransportError

__all__ = ["MANIFEST_MEDIA_TYPES", "ManifestDescriptor", "RegistryClient", "api_host"]

logger = logging.getLogger(__name__)

MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # what distribution accepts for a manifest


@dataclass(frozen=True)
class ManifestDescriptor:
    """What a registry serves for a tag: ``sha256:<hex>`` digest, byte size, media type."""

    digest: str
    size: int
    media_type: str

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]


def api_host(registry: str) -> str:
    """The host that serves the Registry API for a reference's registry name."""
    return "registry-1.docker.io" if registry in ("docker.io", "index.docker.io") else registry


class RegistryClient:
    """Talks the Registry HTTP API v2.

    Args:
        transport: the HTTP seam (carries TLS trust and credentials).
        insecure_registries: ``host[:port]`` names that may use plain HTTP.
        warn: called with a warning for each insecure registry used.
    """

    def __init__(
        self,
        *,
        transport: Transport,
        insecure_registries: Iterable[str] = (),
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self._transport = transport
        self._insecure = frozenset(insecure_registries)
        self._warn = warn or logger.warning
        self._base: dict[str, str] = {}

    def resolve(self, ref: ImageRef) -> ManifestDescriptor:
        """The manifest descriptor for ``ref``'s digest, else its tag.

        Raises:
            ManifestNotFoundError: the registry has no such manifest.
            AuthenticationError: the registry refused our credentials.
            RegistryUnavailableError: the registry cannot be reached.
            RegistryProtocolError: the registry's answer is inconsistent.
        """
        reference = ref.digest or ref.tag
        if reference is None:
            raise ValueError("resolve() needs a tag or a digest")
        url = f"{self.base_url(ref.registry)}/v2/{ref.repository}/manifests/{reference}"
        resp = self._call("HEAD", url, ref)
        if resp.status == 200:
            desc = _from_headers(resp)
            if desc is not None:
                _check_requested_digest(ref, desc)
                return desc
            logger.debug("HEAD %s lacked digest/length/type headers: falling back to GET", url)
        elif resp.status != 404 and resp.status not in (401, 403) and resp.status < 500:
            logger.debug("HEAD %s answered %d: retrying with GET", url, resp.status)
        else:
            self._raise_for_status(resp, ref)
        resp = self._call("GET", url, ref, max_bytes=MAX_MANIFEST_BYTES)
        if resp.status != 200:
            self._raise_for_status(resp, ref)
        desc = _from_body(resp, ref)
        _check_requested_digest(ref, desc)
        return desc

    def has_manifest(self, ref: ImageRef, digest: str) -> bool:
        """Whether the registry still serves ``digest`` in ``ref``'s repository."""
        url = f"{self.base_url(ref.registry)}/v2/{ref.repository}/manifests/{digest}"
        resp = self._call("HEAD", url, ref)
        if resp.status == 200:
            return True
        if resp.status == 404:
            return False
        self._raise_for_status(resp, ref)
        return False  # pragma: no cover - _raise_for_status always raises

    def is_plain_http(self, registry: str) -> bool:
        """Whether ``registry`` is reached over plain HTTP (after probing)."""
        return self.base_url(registry).startswith("http://")

    def base_url(self, registry: str) -> str:
        """``https://host`` or, for loopback and insecure registries, maybe ``http://host``.

        Raises:
            RegistryUnavailableError: a loopback registry answers neither way.
        """
        if registry in self._base:
            return self._base[registry]
        host = api_host(registry)
        if registry in self._insecure or host in self._insecure:
            self._warn(
                f"using plain HTTP for registry {registry} (listed as insecure): its answers can be "
                "read and changed in transit"
            )
            base = f"http://{host}"
        elif is_loopback_host(split_host_port(host)[0]):
            base = self._probe_loopback(host)
        else:
            base = f"https://{host}"
        self._base[registry] = base
        return base

    # --- internals ---------------------------------------------------------------

    def _probe_loopback(self, host: str) -> str:
        try:
            self._transport.request("GET", f"https://{host}/v2/", max_bytes=4096)
        except TransportError as e:
            if e.tls:
                logger.debug("loopback registry %s does not speak TLS: using plain HTTP", host)
                return f"http://{host}"
            raise RegistryUnavailableError(
                f"cannot reach registry {host}: {e.reason}",
                hint="check that the registry is running and the address is right",
            ) from e
        return f"https://{host}"

    def _call(self, method: str, url: str, ref: ImageRef, *, max_bytes: int = 4096) -> Response:
        headers = {"Accept": ", ".join(MANIFEST_MEDIA_TYPES)}
        try:
            return self._transport.request(
                method,
                url,
                headers=headers,
                scope=f"repository:{ref.repository}:pull",
                max_bytes=max_bytes,
            )
        except TransportError as e:
            raise RegistryUnavailableError(
                f"cannot reach registry {ref.registry}: {e.reason}",
                hint="check that the registry is running and reachable; --registry-ca FILE if it uses a private CA",
            ) from e

    def _raise_for_status(self, resp: Response, ref: ImageRef) -> None:
        where = f"{ref.registry}/{ref.repository}:{ref.digest or ref.tag}"
        if resp.status in (401, 403):
            raise AuthenticationError(
                f"registry {ref.registry} refused access to {ref.repository} (HTTP {resp.status})",
                hint=f"run `docker login {ref.registry}` or set TRUSTCTL_REGISTRY_USERNAME and "
                "TRUSTCTL_REGISTRY_PASSWORD",
            )
        if resp.status == 404:
            raise ManifestNotFoundError(
                f"registry has no manifest for {where}",
                hint="push the image first, or check the repository and tag",
                reference=where,
            )
        if resp.status >= 500 or resp.status == 429:
            raise RegistryUnavailableError(
                f"registry {ref.registry} is unavailable (HTTP {resp.status})",
                hint="try again later",
            )
        raise RegistryProtocolError(f"registry answered HTTP {resp.status} for {where}")


def _media_type(value: str | None) -> str | None:
    if not value:
        return None
    return value.split(";", 1)[0].strip() or None


def _from_headers(resp: Response) -> ManifestDescriptor | None:
    digest = resp.header("docker-content-digest")
    length = resp.header("content-length")
    media_type = _media_type(resp.header("content-type"))
    # isascii: str.isdigit() is also true for "²", which int() refuses
    if not (digest and length and length.isascii() and length.isdigit() and int(length) > 0):
        return None
    if not (media_type and is_digest(digest)):
        return None
    return ManifestDescriptor(digest, int(length), media_type)


def _from_body(resp: Response, ref: ImageRef) -> ManifestDescriptor:
    if resp.truncated:
        raise RegistryProtocolError(f"manifest for {ref} is larger than {MAX_MANIFEST_BYTES} bytes")
    digest = "sha256:" + hashlib.sha256(resp.data).hexdigest()
    claimed = resp.header("docker-content-digest")
    if claimed and claimed.startswith("sha256:") and claimed != digest:
        raise RegistryProtocolError(
            f"registry says {ref} is {claimed} but the manifest it sent hashes to {digest}; "
            "the registry or something between us is misbehaving, and this may be an attack"
        )
    media_type = _media_type(resp.header("content-type"))
    if media_type is None or media_type in ("application/json", "application/octet-stream"):
        try:
            body_type = json.loads(resp.data).get("mediaType")
        except (ValueError, AttributeError):
            body_type = None
        media_type = body_type if isinstance(body_type, str) else media_type
    if not media_type:
        raise RegistryProtocolError(
            f"registry did not say which media type the manifest for {ref} has"
        )
    return ManifestDescriptor(digest, len(resp.data), media_type)


def _check_requested_digest(ref: ImageRef, desc: ManifestDescriptor) -> None:
    if ref.digest and desc.digest != ref.digest:
        raise RegistryProtocolError(
            f"asked the registry for {ref.digest} but it answered with {desc.digest}; this may be an attack"
        )
