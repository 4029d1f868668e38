"""Root metadata as a TUF client reads it: one self-signed root, a chain of root
rotations (each signed by the previous root and by itself), and the file format
``trustctl trust export --chain`` writes (one root, or a JSON array of roots).

python-tuf is imported when a root is read: ``status`` needs none.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from trustctl.errors import UntrustedSignatureError, UsageError

if TYPE_CHECKING:
    from tuf.api.metadata import Metadata, Root

__all__ = ["MAX_ROOT_ROTATIONS", "parse_root", "parse_root_chain", "verify_root_chain"]

# The most root versions a chain may have (python-tuf's UpdaterConfig default).
MAX_ROOT_ROTATIONS = 256


def parse_root(data: bytes, *, what: str) -> Metadata[Root]:
    """Parse root metadata and check it is signed by a threshold of its own root keys.

    Raises:
        UsageError: not root metadata.
        UntrustedSignatureError: not self-signed by a threshold of its root keys.
    """
    from tuf.api.exceptions import UnsignedMetadataError
    from tuf.api.metadata import Metadata, Root
    from tuf.api.serialization import DeserializationError, SerializationError

    try:
        md = Metadata[Root].from_bytes(data)
    except DeserializationError as e:
        raise UsageError(f"{what} is not TUF root metadata: {e}") from e
    if not isinstance(md.signed, Root):
        raise UsageError(f"{what} is {md.signed.type} metadata, not root")
    try:
        md.signed.verify_delegate(Root.type, md.signed_bytes, md.signatures)
    except SerializationError as e:  # e.g. a float where canonical JSON allows none
        raise UsageError(
            f"{what} is not TUF root metadata: its signed part has no canonical JSON form "
            "(a float, or a number where an integer belongs?)"
        ) from e
    except UnsignedMetadataError as e:
        raise UntrustedSignatureError(
            f"{what} is not signed by a threshold of its own root keys: {e}; refusing to pin it"
        ) from e
    return md


def verify_root_chain(roots: Sequence[bytes], *, what: str) -> list[Metadata[Root]]:
    """Check root versions the way a TUF client walks them, with python-tuf's Metadata API.

    The first root must be signed by a threshold of its own root keys; each next one
    must be root metadata of exactly the next version, signed by a threshold of the
    previous root's root keys *and* of its own (TUF specification 5.3.4-5.3.5).

    Raises:
        UsageError: empty, too long, or not root metadata.
        UntrustedSignatureError: a step does not verify: this may be an attack.
    """
    from tuf.api.exceptions import UnsignedMetadataError
    from tuf.api.metadata import Metadata, Root
    from tuf.api.serialization import DeserializationError

    if not roots:
        raise UsageError(f"{what} holds no root metadata")
    if len(roots) > MAX_ROOT_ROTATIONS:
        raise UsageError(f"{what} holds more than {MAX_ROOT_ROTATIONS} root versions")
    chain = [parse_root(roots[0], what=f"{what}: the first root")]
    for data in roots[1:]:
        previous = chain[-1].signed
        step = f"root v{previous.version + 1}"
        try:
            md = Metadata[Root].from_bytes(data)
        except DeserializationError as e:
            raise UsageError(f"{what}: {step} is not TUF root metadata: {e}") from e
        if not isinstance(md.signed, Root):
            raise UsageError(f"{what}: {step} is {md.signed.type} metadata, not root")
        if md.signed.version != previous.version + 1:
            raise UntrustedSignatureError(
                f"{what}: root v{previous.version} is followed by root v{md.signed.version}, not "
                f"v{previous.version + 1}; this may be an attack (a rollback or a forged chain)"
            )
        for signer, whose in ((previous, "previous root's"), (md.signed, "own")):
            try:
                signer.verify_delegate(Root.type, md.signed_bytes, md.signatures)
            except UnsignedMetadataError as e:
                raise UntrustedSignatureError(
                    f"{what}: {step} is not signed by a threshold of its {whose} root keys ({e}); "
                    "this may be an attack",
                    hint="do not pin it; ask the repository owner",
                ) from e
        chain.append(md)
    return chain


def parse_root_chain(data: bytes, *, what: str) -> list[bytes]:
    """The root documents in ``data``: one root, or a JSON array of roots (oldest
    first, as ``trustctl trust export --chain`` writes it).

    Raises:
        UsageError: neither.
    """
    stripped = data.lstrip()
    if not stripped.startswith(b"["):
        return [data]
    try:
        docs = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise UsageError(f"{what} is not JSON: {type(e).__name__}") from e
    if not isinstance(docs, list) or not docs or not all(isinstance(d, dict) for d in docs):
        raise UsageError(f"{what} is neither root metadata nor a list of root metadata")
    return [json.dumps(d).encode() for d in docs]
