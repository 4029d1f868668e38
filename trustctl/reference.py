"""Image references and GUNs: parse once, at the edge, into a value type.

A reference is ``[REGISTRY[:PORT]/]REPOSITORY[:TAG][@sha256:HEX]``, with Docker's
rules: the first component is a registry when it contains ``.`` or ``:`` or is
``localhost`` (else the registry is ``docker.io`` and a one-component name gets the
``library/`` prefix); repository components are lowercase; a tag is at most 128
characters of ``[A-Za-z0-9_.-]`` not starting with ``.`` or ``-``. The GUN (the trust
repository's name) is ``registry/repository``.

Example:
    >>> ref = parse_reference("127.0.0.1:5000/library/app:v1")
    >>> (ref.gun, ref.tag, ref.is_loopback)
    ('127.0.0.1:5000/library/app', 'v1', True)
    >>> parse_reference("alpine").gun
    'docker.io/library/alpine'
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from trustctl.errors import InvalidReferenceError

__all__ = [
    "ImageRef",
    "is_digest",
    "is_loopback_host",
    "parse_gun",
    "parse_reference",
    "split_host_port",
]

DEFAULT_REGISTRY = "docker.io"
MAX_NAME_LENGTH = 255

_DOMAIN_COMPONENT = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_DOMAIN_RE = re.compile(
    rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?$"
)
_PATH_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
# Always ``fullmatch``: with ``match``, ``$`` also matches before a final newline, so
# "app\n" would pass as a repository component (and "v1\n" as a tag).


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference. ``tag`` and ``digest`` may be absent."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def gun(self) -> str:
        """The trust repository name: ``registry/repository``."""
        return f"{self.registry}/{self.repository}"

    @property
    def host(self) -> str:
        """The registry host without the port (IPv6 without brackets)."""
        return split_host_port(self.registry)[0]

    @property
    def is_loopback(self) -> bool:
        return is_loopback_host(self.host)

    def with_digest(self, digest: str) -> ImageRef:
        """The pinned form ``registry/repository@digest`` (tag dropped)."""
        return ImageRef(self.registry, self.repository, None, digest)

    def __str__(self) -> str:
        out = self.gun
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def is_digest(text: str) -> bool:
    """Whether ``text`` is a manifest digest: ``sha256:`` and 64 lowercase hex digits."""
    return _DIGEST_RE.fullmatch(text) is not None


def split_host_port(registry: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` (IPv6 in brackets) into host and port."""
    if registry.startswith("["):
        host, _, rest = registry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    host, sep, port = registry.rpartition(":")
    if sep and port.isdigit():
        return host, int(port)
    return registry, None


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1 (reached over plain HTTP, like Docker)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bad(text: str, why: str) -> InvalidReferenceError:
    return InvalidReferenceError(f"invalid image reference {text!r}: {why}")


def parse_reference(text: str, *, allow_tag: bool = True, allow_digest: bool = True) -> ImageRef:
    """Parse an image reference.

    Args:
        text: the reference as the user typed it.
        allow_tag: accept ``:TAG``.
        allow_digest: accept ``@sha256:HEX``.

    Raises:
        InvalidReferenceError: the text is not a valid reference (exit code 2).
    """
    if not text or text != text.strip():
        raise _bad(text, "empty or surrounded by spaces")
    if "://" in text:
        raise _bad(text, "drop the URL scheme: a reference is REGISTRY/REPOSITORY:TAG")
    rest, digest = text, None
    if "@" in text:
        rest, _, digest = text.rpartition("@")
        if not allow_digest:
            raise _bad(text, "a digest is not allowed here")
        if not _DIGEST_RE.fullmatch(digest):
            raise _bad(text, f"digest {digest!r} is not sha256:<64 lowercase hex digits>")
    tag = None
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > last_slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not allow_tag:
            raise _bad(text, "a tag is not allowed here (give the repository only)")
        if not _TAG_RE.fullmatch(tag):
            raise _bad(
                text,
                f"tag {tag!r} must be 1-128 characters of A-Z a-z 0-9 _ . - not starting with . or -",
            )
    registry, repository = _split_registry(text, rest)
    if len(repository) > MAX_NAME_LENGTH:
        raise _bad(text, f"repository name longer than {MAX_NAME_LENGTH} characters")
    for component in repository.split("/"):
        if component.lower() == component and _PATH_COMPONENT_RE.fullmatch(component):
            continue
        if component.lower() != component:
            raise _bad(text, f"repository name must be lowercase (got {component!r})")
        raise _bad(text, f"invalid repository component {component!r}")
    return ImageRef(registry, repository, tag, digest)


def _split_registry(text: str, name: str) -> tuple[str, str]:
    if not name:
        raise _bad(text, "no repository name")
    first, sep, remainder = name.partition("/")
    looks_like_registry = (
        "." in first or ":" in first or first == "localhost" or first.startswith("[")
    )
    if sep and looks_like_registry:
        if not _DOMAIN_RE.fullmatch(first):
            raise _bad(text, f"invalid registry host {first!r}")
        if not remainder:
            raise _bad(text, "no repository name after the registry")
        return first, remainder
    if looks_like_registry and not sep:
        raise _bad(text, f"{first!r} looks like a registry host but no repository follows it")
    if not sep:
        return DEFAULT_REGISTRY, f"library/{name}"
    return DEFAULT_REGISTRY, name


def parse_gun(text: str) -> str:
    """Parse a GUN argument (``REGISTRY/REPOSITORY``, no tag or digest).

    A trailing ``:TAG`` is refused rather than ignored, so that a typo cannot
    operate on another repository.

    Raises:
        InvalidReferenceError: not a valid repository name.
    """
    return parse_reference(text, allow_tag=False, allow_digest=False).gun
