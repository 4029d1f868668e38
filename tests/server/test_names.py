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
    [
        ("v1.2.3", None),
        ("a/b", None),
        ("_latest", None),
        ("docs/руководство", None),  # one script per segment: fine
        ("a/b c", None),
        ("v1\n", "OCI tag grammar"),
        ("../x", "'..'"),
        ("/x", "'/'"),
        ("e\u0301", "OCI tag grammar"),
        ("a/e\u0301", "NFC"),
        ("a/b\nc", "control"),
    ],
)
def test_target_paths(path: str, problem: str | None) -> None:
    found = target_path_problem(path)
    assert (found is None) if problem is None else (problem in found), found


#: Names that look like a tag (or a path) a deployer knows, but are other strings
#: (issue 10, row 12). Each would be a second target that reads like the first.
LOOK_ALIKES = {
    "tag with U+2028 line separator": "v1\u2028",
    "tag with a no-break space": "v1\u00a0",
    "tag in full-width letters": "\uff56\uff11",
    "tag with a Cyrillic e": "r\u0435lease",
    "tag with a zero-width space": "v\u200b1",
    "tag starting with a dash": "-v1",
    "tag longer than 128 characters": "v" * 129,
    "path with U+2028": "team/v1\u2028",
    "path with a no-break space": "team/v1\u00a0x",
    "path in full-width letters": "team/\uff56\uff11",
    "path with a Cyrillic a among Latin letters": "team/\u0430pp",
    "path with a zero-width joiner": "team/a\u200db",
    "path with a right-to-left override": "team/\u202egpj.exe",
}


@pytest.mark.parametrize("path", LOOK_ALIKES.values(), ids=LOOK_ALIKES.keys())
def test_look_alike_target_names_are_refused(path: str) -> None:
    assert target_path_problem(path) is not None
