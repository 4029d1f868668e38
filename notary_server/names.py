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


#: The OCI distribution grammar for tags: what a target name without '/' must be.
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
#: Scripts with letters that look like each other's (Latin "a", Cyrillic "а", Greek "α"):
#: one segment of a path-like target name may use letters of one of them only.
_LOOKALIKE_SCRIPTS = frozenset({"LATIN", "CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE", "COPTIC"})


def _script(c: str) -> str:
    return unicodedata.name(c, "UNKNOWN").split(" ", 1)[0]


def target_path_problem(path: str, max_length: int = MAX_TARGET_PATH_LENGTH) -> str | None:
    """Say what is wrong with a target name, or None when it is acceptable.

    A name without ``/`` is a tag: it must follow the OCI distribution grammar for
    tags, ``[A-Za-z0-9_][A-Za-z0-9._-]{0,127}``, so a tag has exactly one spelling.
    A path-like name (with ``/``) must be NFC and NFKC-stable (no full-width forms,
    no-break spaces or other compatibility characters), contain no control, format,
    unassigned or separator characters other than the ASCII space (no U+2028, no
    zero-width characters), no backslash, no leading ``/``, no empty, ``.`` or ``..``
    segment, and no segment that mixes letters of look-alike scripts (Latin, Cyrillic,
    Greek, Armenian, Cherokee, Coptic).
    """
    if not path:
        return "empty target path"
    if len(path) > max_length:
        return f"target path longer than {max_length} characters"
    if "/" not in path:
        if not _TAG_RE.fullmatch(path):
            return (
                "a target name without '/' is a tag and must follow the OCI tag grammar "
                "[A-Za-z0-9_][A-Za-z0-9._-]{0,127}"
            )
        return None
    if unicodedata.normalize("NFC", path) != path:
        return "target path is not NFC-normalised"
    if unicodedata.normalize("NFKC", path) != path:
        return (
            "target path contains compatibility characters (full-width forms, no-break spaces, ...)"
        )
    for c in path:
        category = unicodedata.category(c)
        if category.startswith("C") or (category.startswith("Z") and c != " "):
            return f"target path contains an invisible, control or separator character (U+{ord(c):04X})"
    if "\\" in path or path.startswith("/"):
        return "target path contains a backslash or starts with '/'"
    segments = path.split("/")
    if any(seg in ("", ".", "..") for seg in segments):
        return "target path contains an empty, '.' or '..' segment"
    for seg in segments:
        scripts = {_script(c) for c in seg if unicodedata.category(c).startswith("L")}
        if len(scripts & _LOOKALIKE_SCRIPTS) > 1:
            return (
                "target path mixes letters of look-alike scripts in one segment "
                f"({', '.join(sorted(scripts & _LOOKALIKE_SCRIPTS)).lower()})"
            )
    return None
