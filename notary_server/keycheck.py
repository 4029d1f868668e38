"""Key checks the TUF client does not make: each key id is the id of its key, and no
public key is listed twice.

python-tuf counts signatures by key id, so one key listed under two ids would count
twice towards a threshold; the TUF specification says clients must compute key ids,
and python-tuf does not. Pure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from cryptography.hazmat.primitives import serialization
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import Key

from notary_server import errors

__all__ = ["check_keys", "compute_keyid"]


def compute_keyid(key: Key) -> str:
    """The TUF key id of ``key``: sha256 of canonical ``{keytype, scheme, keyval}``."""
    data = {"keytype": key.keytype, "scheme": key.scheme, "keyval": key.keyval}
    canonical = encode_canonical(data)
    assert canonical is not None
    return hashlib.sha256(canonical.encode()).hexdigest()


def _public_identity(key: Key) -> bytes:
    """The public key material, normalised so two encodings of one key compare equal."""
    public = str(key.keyval.get("public", ""))
    if public.lstrip().startswith("-----BEGIN"):
        try:
            loaded = serialization.load_pem_public_key(public.encode())
            return loaded.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        except ValueError:
            pass
    return public.strip().lower().encode()


def check_keys(where: str, keys: Mapping[str, Key], max_keys: int) -> None:
    """Raise BadKeysError for a wrong key id or a duplicated key, TooLargeError past ``max_keys``."""
    if len(keys) > max_keys:
        raise errors.TooLargeError(f"{where}: {len(keys)} keys is more than allowed", role=where)
    owners: dict[bytes, str] = {}
    for keyid, key in keys.items():
        computed = compute_keyid(key)
        if keyid != computed:
            raise errors.BadKeysError(
                f"{where}: key id {keyid} is not the id of its key (expected {computed})",
                role=where,
                keyid=keyid,
                expected_keyid=computed,
            )
        ident = _public_identity(key)
        if ident in owners:
            raise errors.BadKeysError(
                f"{where}: one public key is listed under two key ids ({owners[ident]} and "
                f"{keyid}); this would fake a signature threshold and may be an attack",
                role=where,
                keyids=[owners[ident], keyid],
            )
        owners[ident] = keyid
