"""Validation of the names a client can send: GUNs, role names, target paths.

Pure functions, no I/O. Every name that reaches storage or a URL has passed one of
these checks, so nothing downstream has to think about traversal, control characters
or Unicode look-alikes.
"""

from __future__ import annotations

import re
import unicodedata

from notary_server.errors import InvalidGunError, InvalidRoleError

__all__ = [
    "TOP_LEVEL_ROLES",
    "check_delegated_role",
    "check_gun",
    "check_role",
    "target_path_problem",
]

TOP_LEVEL_ROLES = frozenset({"root", "targets", "snapshot", "timestamp"})

MAX_GUN_LENGTH = 255
MAX_ROLE_LENGTH = 255
MAX_TARGET_PATH_LENGTH = 1024

# host[:port] then one or more path components, like a Docker image repository.
_GUN_RE = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?"
    r"(?:/[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)+"
)
# Matched with fullmatch: "$" would accept a trailing newline.
# A role segment: letters, digits, '.', '_', '-', never "." or "..".
_ROLE_SEGMENT_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


def check_gun(gun: str, prefixes: tuple[str, ...] = ()) -> str:
    """Return ``gun`` if it is a valid repository name, else raise InvalidGunError.

    A GUN is ``registry-host[:port]/path`` (``127.0.0.1:5000/library/app``). When
    ``prefixes`` is not empty, the GUN must start with one of them.
    """
    if len(gun) > MAX_GUN_LENGTH or not _GUN_RE.fullmatch(gun) or ".." in gun.split("/"):
        raise InvalidGunError(
            f"invalid repository name {gun[:80]!r}: expected host[:port]/path",
            gun=gun[:MAX_GUN_LENGTH],
        )
    if prefixes and not any(gun.startswith(p) for p in prefixes):
        raise InvalidGunError(
            f"repository {gun!r} is outside the prefixes this server accepts",
            gun=gun,
            allowed_prefixes=list(prefixes),
        )
    return gun


def check_role(role: str) -> str:
    """Return ``role`` if it is a top-level or safe delegated role name."""
    if role in TOP_LEVEL_ROLES:
        return role
    return check_delegated_role(role)


def check_delegated_role(role: str) -> str:
    """Return ``role`` if it is a safe delegated role name, else raise InvalidRoleError.

    Delegated names may contain ``/`` (``targets/releases``); each segment uses a
    conservative charset and none is ``.`` or ``..``, so a role name can never
    climb out of its GUN in a URL or a path. The name starts with a letter, so that
    ``<version>.<role>.json`` always parses one way.
    """
    segments = role.split("/")
    if (
        not role
        or len(role) > MAX_ROLE_LENGTH
        or role in TOP_LEVEL_ROLES
        or not role[0].isalpha()  # "5.x.json" must read as version 5 of x, never role "5.x"
        or not all(_ROLE_SEGMENT_RE.fullmatch(s) for s in segments)
    ):
        raise InvalidRoleError(f"invalid role name {role[:80]!r}", role=role[:MAX_ROLE_LENGTH])
    return role


def target_path_problem(path: str, max_length: int = MAX_TARGET_PATH_LENGTH) -> str | None:
    """Say what is wrong with a target path, or None when it is acceptable.

    Target paths are tags or path-like names. Refused: empty, too long, not NFC
    normalised, control characters, backslashes, a leading ``/`` and ``.``/``..``
    segments.
    """
    if not path:
        return "empty target path"
    if len(path) > max_length:
        return f"target path longer than {max_length} characters"
    if unicodedata.normalize("NFC", path) != path:
        return "target path is not NFC-normalised"
    if any(unicodedata.category(c).startswith("C") for c in path):
        return "target path contains control or unassigned characters"
    if "\\" in path or path.startswith("/"):
        return "target path contains a backslash or starts with '/'"
    if any(seg in ("", ".", "..") for seg in path.split("/")):
        return "target path contains an empty, '.' or '..' segment"
    return None
