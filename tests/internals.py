"""What an error body must never show a client: our hosts, ports, paths, SQL, library
exception text. Shared by the tests and by ``benchmarks/soak.py``.

Example:
    >>> leaks(b'{"errors":[{"code":"X","message":"signer at https://127.0.0.1:41507 is down"}]}')
    ['internal address 127.0.0.1']
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["leaks"]

_PATTERNS = [
    ("internal address", re.compile(r"\b(?:127\.\d+\.\d+\.\d+|localhost|0\.0\.0\.0|::1)\b")),
    ("URL", re.compile(r"\bhttps?://")),
    (
        "file path",
        re.compile(r"(?:/[\w.-]+){2,}\.(?:py|pem|db|sock|log)\b|/(?:tmp|home|usr|var|etc|root)/"),
    ),
    ("exception class", re.compile(r"\b[A-Z][A-Za-z]+(?:Error|Exception|Timeout|Refused)\b")),
    (
        "library",
        re.compile(
            r"\b(?:urllib3|psycopg2?|sqlalchemy|sqlite3|werkzeug|gunicorn|HTTPSConnection|"
            r"Traceback|errno|Errno)\b",
            re.IGNORECASE,
        ),
    ),
    ("SQL", re.compile(r"\b(?:SELECT|INSERT|UPDATE|DELETE FROM|tuf_files)\b")),
]


def leaks(body: bytes | str, ports: Iterable[int] = (), allow: Iterable[str] = ()) -> list[str]:
    """The internals ``body`` shows (empty when it shows none).

    ``allow``: what the client sent itself and may see again (its repository name,
    e.g. ``127.0.0.1:5000/app``), removed before looking.
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    for sent in sorted(allow, key=len, reverse=True):
        if sent:
            text = text.replace(sent, "")
    found = [f"{name} {m.group(0)}" for name, rx in _PATTERNS for m in [rx.search(text)] if m]
    for port in ports:
        if re.search(rf"(?<![\w.]){port}(?!\w)", text):
            found.append(f"port {port}")
    return found
