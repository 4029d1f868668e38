"""Which dialect a repository, a stored file or a request is in. Pure.

A repository's dialect is fixed by its first stored root: a root whose ``_type`` is
``Root`` (capitalised) makes it a Notary repository for life. Files the server
stores are compact JSON, so the dialect of a stored file shows in its bytes.

Before a repository has a root, only the key routes (``GET``/``POST
.../timestamp.key``) need to know which key format to answer in. The unmodified
notary CLI 0.7.0 sends ``User-Agent: Go-http-client/1.1`` and the docker CLI's
trust commands send ``Docker-Client/28.2.2 (linux)`` (docker 28); trustctl and
python-tuf send their own.
A server can also name GUN prefixes (``notary_dialect_prefixes``) whose new
repositories are always Notary's, for clients behind a proxy that rewrites the
User-Agent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

__all__ = ["NOTARY", "TUF", "file_dialect", "request_wants_notary", "upload_dialect"]

NOTARY = "notary"
TUF = "tuf"

_NOTARY_AGENTS = re.compile(r"(Go-http-client/|Docker-Client/|docker/|notary/)", re.IGNORECASE)
_TYPE = re.compile(rb'"_type"\s*:\s*"([A-Za-z]+)"')
_SCAN = 65536


def file_dialect(data: bytes) -> str:
    """The dialect of a metadata file: Notary's when its ``_type`` is capitalised.

    Looks at the first ``_type`` in the file's head (any JSON layout); the full
    parse of whichever dialect is picked checks everything, so a misleading file
    is only refused, never trusted.
    """
    m = _TYPE.search(data, 0, _SCAN)
    if m is None:
        try:
            t = json.loads(data)["signed"]["_type"]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return TUF
        return NOTARY if isinstance(t, str) and t[:1].isupper() else TUF
    return NOTARY if m.group(1)[:1].isupper() else TUF


def upload_dialect(uploads: Mapping[str, bytes]) -> str:
    """The dialect of an upload: Notary's when any part is a Notary file."""
    return NOTARY if any(file_dialect(raw) == NOTARY for raw in uploads.values()) else TUF


def request_wants_notary(gun: str, user_agent: str | None, prefixes: tuple[str, ...]) -> bool:
    """Whether a request for a repository without a root wants Notary's key format."""
    if any(gun.startswith(p) for p in prefixes):
        return True
    return bool(user_agent and _NOTARY_AGENTS.match(user_agent))
