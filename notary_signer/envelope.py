"""The bytes of a signed TUF metadata file, as the signer and the trust server both build them.

A server-generated snapshot is signed and then hashed into the timestamp that points
at it. When the signer signs both in one request (``POST /v1/sign/batch``), it must
know the exact bytes of the snapshot file before signing the timestamp, so the file
layout is fixed here and shared by both sides::

    {"signatures":[{"keyid":"<hex>","sig":"<hex>"},...],"signed":<canonical payload>}

Keys sorted, no whitespace: for the ASCII payloads the server generates this is
byte for byte what python-tuf's ``Metadata.to_bytes()`` writes, and it always parses
back to the same signed payload (the canonical bytes are embedded unchanged).

Example::

    data = metadata_bytes([("ab12...", "3045...")], canonical_payload)
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["metadata_bytes"]

_HEX = re.compile(r"[0-9a-f]+")


def metadata_bytes(signatures: Iterable[tuple[str, str]], signed: bytes) -> bytes:
    """The metadata file of canonical ``signed`` bytes with ``(keyid, sig)`` signatures, in order.

    Raises:
        ValueError: a key id or signature is not lowercase hex.
    """
    parts = []
    for keyid, sig in signatures:
        if not _HEX.fullmatch(keyid) or not _HEX.fullmatch(sig):
            raise ValueError("key ids and signatures must be lowercase hex")
        parts.append(f'{{"keyid":"{keyid}","sig":"{sig}"}}')
    return b'{"signatures":[' + ",".join(parts).encode() + b'],"signed":' + signed + b"}"
