"""Names a client can send: GUNs, role names, target paths."""

from __future__ import annotations

import pytest

from notary_server.errors import InvalidGunError, InvalidRoleError
from notary_server.names import check_gun, check_role, target_path_problem

GOOD_GUNS = ["127.0.0.1:5000/app", "registry.example.com/team/app", "docker.io/library/alpine"]
BAD_GUNS = {
    "trailing newline": "127.0.0.1:5000/app\n",
    "no path": "registry.example.com",
    "traversal": "reg.example/../etc",
    "empty segment": "reg.example//app",
    "space": "reg.example/my app",
    "leading slash": "/reg.example/app",
    "control character": "reg.example/a\x00pp",
    "too long": "reg.example/" + "a" * 300,
}
GOOD_ROLES = ["root", "targets", "targets/releases", "targets/releases/bins-0a", "bins-ff"]
BAD_ROLES = {
    "trailing newline": "targets/alice\n",
    "traversal": "targets/../root",
    "dot segment": "targets/./x",
    "starts with a digit": "5.x",
    "empty": "",
    "empty segment": "targets//x",
    "backslash": "targets\\x",
}


@pytest.mark.parametrize("gun", GOOD_GUNS)
def test_good_guns(gun: str) -> None:
    assert check_gun(gun) == gun


@pytest.mark.parametrize("gun", BAD_GUNS.values(), ids=BAD_GUNS.keys())
def test_bad_guns(gun: str) -> None:
    with pytest.raises(InvalidGunError):
        check_gun(gun)


def test_gun_prefixes() -> None:
    assert check_gun("docker.io/library/a", ("docker.io/",))
    with pytest.raises(InvalidGunError, match="outside the prefixes"):
        check_gun("quay.io/a/b", ("docker.io/",))


@pytest.mark.parametrize("role", GOOD_ROLES)
def test_good_roles(role: str) -> None:
    assert check_role(role) == role


@pytest.mark.parametrize("role", BAD_ROLES.values(), ids=BAD_ROLES.keys())
def test_bad_roles(role: str) -> None:
    with pytest.raises(InvalidRoleError):
        check_role(role)


@pytest.mark.parametrize(
    "path, problem",
    [("v1.2.3", None), ("a/b", None), ("v1\n", "control"), ("../x", "'..'"), ("/x", "'/'"), ("e\u0301", "NFC")],
)
def test_target_paths(path: str, problem: str | None) -> None:
    found = target_path_problem(path)
    assert (found is None) if problem is None else (problem in found)
