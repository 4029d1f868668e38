"""Implementations of :class:`~notary_signer.keyservice.KeyService` for the trust server.

* :class:`SignerClient`: HTTPS with mutual TLS to a running ``notary-signer``
  (urllib3 directly, so ``REQUESTS_CA_BUNDLE``/``SSL_CERT_FILE`` cannot replace the
  explicit CA, and proxy variables are not used).
* :class:`LocalKeyService`: in-process over a key store, same policy, no sockets.
* :class:`RemoteSigner`: the securesystemslib ``Signer`` both hand out; it verifies
  every signature it gets back against the expected public key before returning it.

Errors: the signer's envelope codes are mapped back to the same exception classes
(``SIGN_REFUSED`` -> :class:`SignerRefusedError`, ``KEY_NOT_FOUND`` ->
:class:`KeyNotFoundError`, ...); connection failures, timeouts, 5xx answers and
malformed answers raise :class:`SignerUnavailableError`.

Example::

    keys = SignerClient("https://127.0.0.1:7899", ca_file="keys/dev-ca.pem",
                        cert_file="keys/server-client.pem",
                        key_file="keys/server-client-key.pem")
    key = keys.create_key("reg/app", "timestamp")
    metadata.sign(keys.get_signer("reg/app", "timestamp", key))
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import urllib3
from securesystemslib.exceptions import UnverifiedSignatureError, VerificationError
from securesystemslib.signer import Key, SecretsHandler, Signature, Signer
from urllib3.util import Retry, Timeout

from notary_signer.canonical import compute_keyid
from notary_signer.envelope import metadata_bytes
from notary_signer.errors import ConfigError, SignerError, SignerUnavailableError, error_for_code
from notary_signer.keystore import KeyStore
from notary_signer.service import SigningService

__all__ = ["LocalKeyService", "OnlineFiles", "RemoteSigner", "SignerClient"]

logger = logging.getLogger(__name__)


class _SignBackend(Protocol):
    def sign_payload(self, keyid: str, gun: str, role: str, payload: bytes) -> str:
        """Return the hex signature of ``payload`` by ``keyid``."""


@dataclass(frozen=True)
class OnlineFiles:
    """A signed snapshot (if one was asked for) and the timestamp pointing at it.

    Every signature in them was verified against the key it was asked of.
    """

    snapshot: bytes | None = field(repr=False)
    timestamp: bytes = field(repr=False)
    #: Canonical signed part of ``timestamp`` (the template, with the snapshot
    #: file's length and sha256 filled in when a snapshot was signed).
    timestamp_payload: bytes = field(repr=False)
    #: (keyid, hex signature) pairs in each file, in order.
    snapshot_signatures: tuple[tuple[str, str], ...] = ()
    timestamp_signatures: tuple[tuple[str, str], ...] = ()


def _verified(
    keys: Sequence[Key], sigs: Sequence[tuple[str, str]], payload: bytes
) -> list[tuple[str, str]]:
    """``sigs`` if they are exactly one valid signature over ``payload`` per key, in order."""
    if [k for k, _ in sigs] != [key.keyid for key in keys]:
        raise SignerUnavailableError("signer answered signatures of other keys than asked")
    for key, (keyid, sig) in zip(keys, sigs, strict=True):
        try:
            key.verify_signature(Signature(keyid, sig), payload)
        except (UnverifiedSignatureError, VerificationError) as e:
            raise SignerUnavailableError(
                f"signature from the signer does not verify with key {keyid}", keyid=keyid
            ) from e
    return list(sigs)


def _assemble(
    timestamp_keys: Sequence[Key],
    snapshot_keys: Sequence[Key],
    snapshot_payload: bytes | None,
    snapshot_sigs: Sequence[tuple[str, str]],
    timestamp_payload: bytes,
    timestamp_sigs: Sequence[tuple[str, str]],
) -> OnlineFiles:
    """Check every signature and lay out the files (:func:`metadata_bytes`)."""
    try:
        snapshot = None
        if snapshot_payload is not None:
            snapshot = metadata_bytes(
                _verified(snapshot_keys, snapshot_sigs, snapshot_payload), snapshot_payload
            )
        timestamp = metadata_bytes(
            _verified(timestamp_keys, timestamp_sigs, timestamp_payload), timestamp_payload
        )
    except ValueError as e:
        raise SignerUnavailableError(f"signer answered a malformed signature: {e}") from e
    return OnlineFiles(
        snapshot, timestamp, timestamp_payload, tuple(snapshot_sigs), tuple(timestamp_sigs)
    )


class RemoteSigner(Signer):
    """A ``Signer`` whose private key lives in the signing service.

    Args:
        public_key: The key expected to sign; every signature is checked against it.
        gun: GUN the signatures are for (the signer checks it is the key's).
        role: ``timestamp`` or ``snapshot`` (likewise checked).
        backend: Sends the request (:class:`SignerClient` or :class:`LocalKeyService`).
    """

    SCHEME = "notary-signer"

    def __init__(self, public_key: Key, gun: str, role: str, backend: _SignBackend) -> None:
        self._public_key = public_key
        self.gun = gun
        self.role = role
        self._backend = backend

    @property
    def public_key(self) -> Key:
        """The public key of the remote private key."""
        return self._public_key

    @classmethod
    def from_priv_key_uri(
        cls,
        priv_key_uri: str,
        public_key: Key,
        secrets_handler: SecretsHandler | None = None,
    ) -> Signer:
        """Not supported: get signers from ``KeyService.get_signer`` (it holds the TLS setup).

        Raises:
            NotImplementedError: always.
        """
        raise NotImplementedError(
            "use KeyService.get_signer(gun, role, key) for notary-signer keys"
        )

    def sign(self, payload: bytes) -> Signature:
        """Have the signing service sign ``payload``; verify the result.

        Raises:
            SignerRefusedError: the signer's policy refused the payload.
            KeyNotFoundError: the signer does not hold the key.
            SignerUnavailableError: unreachable, or the signature does not verify.
        """
        keyid = self._public_key.keyid
        sig = Signature(keyid, self._backend.sign_payload(keyid, self.gun, self.role, payload))
        try:
            # never trust the remote blindly
            self._public_key.verify_signature(sig, payload)
        except (UnverifiedSignatureError, VerificationError) as e:
            raise SignerUnavailableError(
                f"signature from the signer does not verify with key {keyid}", keyid=keyid
            ) from e
        return sig


class SignerClient:
    """KeyService over HTTPS with mutual TLS.

    Args:
        base_url: ``https://host:port`` of the signer (plain HTTP is refused).
        ca_file: PEM CA bundle the signer's certificate must chain to (only this one).
        cert_file: PEM client certificate presented to the signer.
        key_file: PEM private key of ``cert_file``.
        timeout: Connect and read timeout in seconds.

    Raises:
        ConfigError: ``base_url`` is not https.
    """

    def __init__(
        self,
        base_url: str,
        *,
        ca_file: str,
        cert_file: str,
        key_file: str,
        timeout: float = 5.0,
    ) -> None:
        if not base_url.startswith("https://"):
            raise ConfigError(f"signer URL must be https:// (mutual TLS), got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        # Retry only failed connects (safe for every method); no read or status retries,
        # which could create a key twice.
        retries = Retry(
            total=2,
            connect=2,
            read=0,
            status=0,
            other=0,
            redirect=0,
            backoff_factor=0.1,
            raise_on_status=False,
            raise_on_redirect=False,
        )
        self._pool = urllib3.PoolManager(
            cert_reqs="CERT_REQUIRED",
            ca_certs=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            ssl_minimum_version=ssl.TLSVersion.TLSv1_2,
            timeout=Timeout(connect=timeout, read=timeout),
            retries=retries,
            maxsize=8,
        )

    def create_key(self, gun: str, role: str, algorithm: str | None = None) -> Key:
        """See :meth:`KeyService.create_key`."""
        body: dict[str, str] = {"gun": gun, "role": role}
        if algorithm:
            body["algorithm"] = algorithm
        return _key_from_json(self._request("POST", "/v1/keys", body), gun, role)

    def list_keys(self, gun: str, role: str) -> list[Key]:
        """See :meth:`KeyService.list_keys`."""
        answer = self._request("GET", "/v1/keys", fields={"gun": gun, "role": role})
        try:
            return [_key_from_json(k, gun, role) for k in answer["keys"]]
        except (KeyError, TypeError) as e:
            raise SignerUnavailableError("signer answered a malformed key list") from e

    def get_key(self, keyid: str) -> Key:
        """Return the public key ``keyid``.

        Raises:
            KeyNotFoundError: the signer has no such key.
            SignerUnavailableError: the signer cannot be reached.
        """
        return _key_from_json(self._request("GET", f"/v1/keys/{keyid}"), None, None)

    def delete_key(self, keyid: str) -> None:
        """Delete the key ``keyid`` in the signer.

        Raises:
            KeyNotFoundError: the signer has no such key.
            SignerUnavailableError: the signer cannot be reached.
        """
        self._request("DELETE", f"/v1/keys/{keyid}")

    def retire_keys(self, gun: str) -> list[str]:
        """See :meth:`KeyService.retire_keys`."""
        answer = self._request("POST", "/v1/keys/retire", {"gun": gun})
        retired = answer.get("retired") if isinstance(answer, dict) else None
        if not isinstance(retired, list) or not all(isinstance(k, str) for k in retired):
            raise SignerUnavailableError("signer answered a malformed retirement")
        return retired

    def get_signer(self, gun: str, role: str, key: Key) -> Signer:
        """See :meth:`KeyService.get_signer`."""
        return RemoteSigner(key, gun, role, self)

    def sign_payload(self, keyid: str, gun: str, role: str, payload: bytes) -> str:
        """Ask the signer to sign ``payload``; return the hex signature (unverified).

        Raises:
            SignerRefusedError, KeyNotFoundError, SignerUnavailableError.
        """
        body = {
            "keyid": keyid,
            "gun": gun,
            "role": role,
            "payload": base64.b64encode(payload).decode(),
        }
        answer = self._request("POST", "/v1/sign", body)
        sig = answer.get("sig") if isinstance(answer, dict) else None
        if not isinstance(sig, str) or answer.get("keyid") != keyid:
            raise SignerUnavailableError("signer answered a malformed signature", keyid=keyid)
        return sig

    def sign_batch(
        self,
        gun: str,
        timestamp_keys: Sequence[Key],
        timestamp_template: bytes,
        snapshot_keys: Sequence[Key] = (),
        snapshot_payload: bytes | None = None,
    ) -> OnlineFiles:
        """See :meth:`KeyService.sign_batch`: one ``POST /v1/sign/batch`` round trip.

        Raises:
            SignerRefusedError, KeyNotFoundError, SignerUnavailableError.
        """
        body: dict[str, Any] = {
            "gun": gun,
            "timestamp": {
                "keyids": [k.keyid for k in timestamp_keys],
                "payload": base64.b64encode(timestamp_template).decode(),
            },
        }
        if snapshot_payload is not None:
            body["snapshot"] = {
                "keyids": [k.keyid for k in snapshot_keys],
                "payload": base64.b64encode(snapshot_payload).decode(),
            }
        answer = self._request("POST", "/v1/sign/batch", body)
        try:
            ts = answer["timestamp"]
            timestamp_payload = base64.b64decode(ts["payload"], validate=True)
            timestamp_sigs = [(s["keyid"], s["sig"]) for s in ts["signatures"]]
            snapshot_sigs = [(s["keyid"], s["sig"]) for s in answer["snapshot"]["signatures"]]
        except (KeyError, TypeError, ValueError) as e:
            raise SignerUnavailableError("signer answered a malformed batch") from e
        return _assemble(
            timestamp_keys,
            snapshot_keys,
            snapshot_payload,
            snapshot_sigs,
            timestamp_payload,
            timestamp_sigs,
        )

    def check_health(self) -> None:
        """See :meth:`KeyService.check_health`."""
        answer = self._request("GET", "/health")
        if not isinstance(answer, dict) or answer.get("status") != "ok":
            raise SignerUnavailableError("signer health check did not answer ok")

    def close(self) -> None:
        """Close pooled connections."""
        self._pool.clear()

    def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        fields: dict[str, str] | None = None,
    ) -> Any:
        url = self.base_url + path
        encoded = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else None
        # Every call but creating a key changes nothing in the signer, so one that
        # failed once the request was sent (a connection the restarted signer no
        # longer knows, a reset) is sent again, once, on a new connection.
        again = not (method == "POST" and path == "/v1/keys")
        while True:
            try:
                resp = self._pool.request(method, url, body=encoded, fields=fields, headers=headers)
                break
            except urllib3.exceptions.HTTPError as e:
                reason = getattr(e, "reason", None) or e
                if again and not isinstance(reason, urllib3.exceptions.NewConnectionError):
                    again = False
                    logger.info(
                        "signer call %s %s failed (%s): once more on a new connection",
                        method,
                        path,
                        type(reason).__name__,
                    )
                    self._pool.clear()
                    continue
                logger.warning("signer %s unreachable: %s", self.base_url, type(reason).__name__)
                raise SignerUnavailableError(
                    f"signer at {self.base_url} is unreachable: {reason}"
                ) from e
        return _decode(resp, method, path)


class LocalKeyService:
    """KeyService in-process over a key store, with the signer's exact policy.

    Args:
        keystore: Where keys live (e.g. ``MemoryKeyStore()``).
        default_algorithm: Algorithm when ``create_key`` names none.
    """

    def __init__(self, keystore: KeyStore, *, default_algorithm: str = "ecdsa") -> None:
        self.service = SigningService(keystore, default_algorithm=default_algorithm)

    def create_key(self, gun: str, role: str, algorithm: str | None = None) -> Key:
        """See :meth:`KeyService.create_key`."""
        return self.service.create_key(gun, role, algorithm).public_key

    def list_keys(self, gun: str, role: str) -> list[Key]:
        """See :meth:`KeyService.list_keys`."""
        return [k.public_key for k in self.service.list_keys(gun, role)]

    def retire_keys(self, gun: str) -> list[str]:
        """See :meth:`KeyService.retire_keys`."""
        return [k.keyid for k in self.service.retire_keys(gun)]

    def get_signer(self, gun: str, role: str, key: Key) -> Signer:
        """See :meth:`KeyService.get_signer`."""
        return RemoteSigner(key, gun, role, self)

    def sign_payload(self, keyid: str, gun: str, role: str, payload: bytes) -> str:
        """Sign through the policy; return the hex signature."""
        return self.service.sign(keyid, gun, role, payload).signature

    def sign_batch(
        self,
        gun: str,
        timestamp_keys: Sequence[Key],
        timestamp_template: bytes,
        snapshot_keys: Sequence[Key] = (),
        snapshot_payload: bytes | None = None,
    ) -> OnlineFiles:
        """See :meth:`KeyService.sign_batch`."""
        result = self.service.sign_batch(
            gun,
            [k.keyid for k in timestamp_keys],
            timestamp_template,
            [k.keyid for k in snapshot_keys],
            snapshot_payload,
        )
        return _assemble(
            timestamp_keys,
            snapshot_keys,
            snapshot_payload,
            [(s.keyid, s.signature) for s in result.snapshot],
            result.timestamp_payload,
            [(s.keyid, s.signature) for s in result.timestamp],
        )

    def check_health(self) -> None:
        """See :meth:`KeyService.check_health`."""
        try:
            self.service.check_health()
        except SignerError as e:
            raise SignerUnavailableError(f"key store unhealthy: {e.message}") from e


def _decode(resp: urllib3.BaseHTTPResponse, method: str, path: str) -> Any:
    """Return the JSON answer, or raise the error class its envelope names."""
    status = resp.status
    try:
        data = json.loads(resp.data) if resp.data else None
    except ValueError:
        data = None
    entry = _error_entry(data)
    if status >= 500 or (status >= 400 and entry is None):
        code = f" ({entry.get('code')})" if entry else ""
        raise SignerUnavailableError(
            f"signer answered {status} to {method} {path}{code}", status=status
        )
    if entry is not None:
        error = error_for_code(str(entry.get("code")))(str(entry.get("message", "")))
        detail = entry.get("detail")
        error.detail = detail if isinstance(detail, dict) else {}
        raise error
    if data is None and status != 204:
        raise SignerUnavailableError(f"signer answered {status} without JSON to {method} {path}")
    return data


def _error_entry(data: Any) -> dict[str, Any] | None:
    """The first entry of an ``{"errors": [...]}`` envelope, if ``data`` is one."""
    errors = data.get("errors") if isinstance(data, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return errors[0]
    return None


def _key_from_json(obj: Any, gun: str | None, role: str | None) -> Key:
    """Parse a key object; check its id is the key's own and it is for gun/role."""
    try:
        keyid = obj["keyid"]
        pub = obj["public_key"]
        key = Key.from_dict(
            keyid, {"keytype": pub["keytype"], "scheme": pub["scheme"], "keyval": pub["keyval"]}
        )
    except (KeyError, TypeError, ValueError) as e:
        raise SignerUnavailableError("signer answered a malformed key object") from e
    if compute_keyid(key) != keyid:
        raise SignerUnavailableError(f"signer answered key {keyid} whose id does not match it")
    if (gun is not None and obj.get("gun") != gun) or (
        role is not None and obj.get("role") != role
    ):
        raise SignerUnavailableError(f"signer answered key {keyid} for another gun or role")
    return key
