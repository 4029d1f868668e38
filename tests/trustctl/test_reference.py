"""Image references and GUNs: a table of valid and invalid inputs."""

from __future__ import annotations

import pytest

from trustctl.errors import EXIT_USAGE, InvalidReferenceError
from trustctl.reference import (
    ImageRef,
    is_loopback_host,
    parse_gun,
    parse_reference,
    split_host_port,
)

DIGEST = "sha256:" + "a" * 64

VALID = {
    "loopback with port and tag": (
        "127.0.0.1:5000/library/app:v1",
        ImageRef("127.0.0.1:5000", "library/app", "v1"),
    ),
    "localhost registry": ("localhost:5000/app", ImageRef("localhost:5000", "app")),
    "bare localhost host": ("localhost/team/app:1.0", ImageRef("localhost", "team/app", "1.0")),
    "docker hub short name": ("alpine", ImageRef("docker.io", "library/alpine")),
    "docker hub short name with tag": (
        "alpine:3.19",
        ImageRef("docker.io", "library/alpine", "3.19"),
    ),
    "docker hub org": ("bitnami/redis:7", ImageRef("docker.io", "bitnami/redis", "7")),
    "dns registry, deep path": (
        "registry.example.com/a/b/c:latest",
        ImageRef("registry.example.com", "a/b/c", "latest"),
    ),
    "digest only": (
        f"reg.example.com/app@{DIGEST}",
        ImageRef("reg.example.com", "app", None, DIGEST),
    ),
    "tag and digest": (
        f"reg.example.com/app:v1@{DIGEST}",
        ImageRef("reg.example.com", "app", "v1", DIGEST),
    ),
    "ipv6 loopback": ("[::1]:5000/app:v2", ImageRef("[::1]:5000", "app", "v2")),
    "separators in path": (
        "reg.io/my_app/sub-name.x:T_1.2-rc",
        ImageRef("reg.io", "my_app/sub-name.x", "T_1.2-rc"),
    ),
    "128-character tag": ("reg.io/app:" + "t" * 128, ImageRef("reg.io", "app", "t" * 128)),
}

INVALID = {
    "empty": "",
    "surrounding spaces": " reg.io/app:v1",
    "url scheme": "https://reg.io/app:v1",
    "uppercase repository": "reg.io/MyApp:v1",
    "empty tag": "reg.io/app:",
    "tag starting with dot": "reg.io/app:.v1",
    "tag starting with dash": "reg.io/app:-v1",
    "129-character tag": "reg.io/app:" + "t" * 129,
    "tag with slash-free colon garbage": "reg.io/app:v1:v2",
    "short digest": "reg.io/app@sha256:abc",
    "sha512 digest": "reg.io/app@sha512:" + "a" * 128,
    "uppercase digest": "reg.io/app@sha256:" + "A" * 64,
    "registry only": "localhost:5000",
    "registry and slash": "reg.io/",
    "double slash": "reg.io//app",
    "trailing separator": "reg.io/app-",
    "leading separator": "reg.io/_app",
    "invalid host": "reg-.io/app",
    "control character": "reg.io/ap\x00p",
    "space inside": "reg.io/my app",
    "name too long": "reg.io/" + "a" * 256,
}


@pytest.mark.parametrize(("text", "expected"), list(VALID.values()), ids=list(VALID))
def test_valid_references_parse(text: str, expected: ImageRef) -> None:
    assert parse_reference(text) == expected


@pytest.mark.parametrize("text", list(INVALID.values()), ids=list(INVALID))
def test_invalid_references_are_usage_errors_with_one_line(text: str) -> None:
    with pytest.raises(InvalidReferenceError) as info:
        parse_reference(text)
    assert info.value.exit_code == EXIT_USAGE
    assert "\n" not in info.value.message
    assert info.value.hint


def test_gun_and_pinned_reference() -> None:
    ref = parse_reference("127.0.0.1:5000/library/app:v1")
    assert ref.gun == "127.0.0.1:5000/library/app"
    assert str(ref) == "127.0.0.1:5000/library/app:v1"
    assert str(ref.with_digest(DIGEST)) == f"127.0.0.1:5000/library/app@{DIGEST}"


def test_gun_argument_refuses_a_tag_rather_than_ignoring_it() -> None:
    assert parse_gun("127.0.0.1:5000/library/app") == "127.0.0.1:5000/library/app"
    with pytest.raises(InvalidReferenceError, match="tag is not allowed"):
        parse_gun("127.0.0.1:5000/library/app:v1")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("localhost", True),
        ("::1", True),
        ("10.0.0.1", False),
        ("registry.example.com", False),
        ("localhost.example.com", False),
    ],
)
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_split_host_port() -> None:
    assert split_host_port("127.0.0.1:5000") == ("127.0.0.1", 5000)
    assert split_host_port("[::1]:5000") == ("::1", 5000)
    assert split_host_port("reg.io") == ("reg.io", None)
