"""notary_signer: the signing service holding the online TUF keys (timestamp, snapshot).

The trust server uses it only through :mod:`notary_signer.keyservice` (the
interface) and :mod:`notary_signer.client` (``SignerClient`` over mutual TLS,
``LocalKeyService`` in-process). ``create_app`` builds the signer's Flask app; it is
imported lazily so that importing the client does not pull in the server side.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from notary_signer.app import create_app

        return create_app
    raise AttributeError(f"module 'notary_signer' has no attribute {name!r}")
