"""The production :class:`~notary_signer.keystore.KeyStore`: SQLAlchemy 2, encrypted at rest.

One table, ``private_keys`` (schema owned by ``notary_signer/migrations``)::

    keyid PK | gun | role | algorithm | keytype | scheme | public_key (JSON text)
    passphrase_alias | encrypted_private (blob, see notary_signer.crypto)
    created_at | last_used

The private key is encrypted before it reaches the database and decrypted only in
:meth:`SQLKeyStore.signer`; no column ever holds it in the clear.

Example::

    engine = make_engine("sqlite:///var/notary-signer.db"); migrate(engine)
    store = SQLKeyStore(engine, KeyEncryptor(os.environ, alias="default"))
"""

from __future__ import annotations

import builtins
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from securesystemslib.signer import CryptoSigner, Key
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Dialect, Row
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.types import TypeDecorator

from notary_signer.crypto import KeyEncryptor, normalize_alias
from notary_signer.errors import KeyNotFoundError, SignerError
from notary_signer.keystore import StoredKey, _material

__all__ = ["SQLKeyStore", "private_keys"]

logger = logging.getLogger(__name__)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware UTC datetimes as naive UTC, returns them aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


metadata = MetaData()

#: Mirrors migrations/versions/0001_initial.py; the migrations own the schema.
private_keys = Table(
    "private_keys",
    metadata,
    Column("keyid", String(64), primary_key=True),
    Column("gun", String(255), nullable=False),
    Column("role", String(32), nullable=False),
    Column("algorithm", String(32), nullable=False),
    Column("keytype", String(32), nullable=False),
    Column("scheme", String(64), nullable=False),
    Column("public_key", Text, nullable=False),
    Column("passphrase_alias", String(64), nullable=False),
    Column("encrypted_private", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used", UTCDateTime, nullable=True),
)

_PUBLIC_COLUMNS = [c for c in private_keys.c if c.name != "encrypted_private"]


class SQLKeyStore:
    """Key store over an SQLAlchemy engine (the schema must be migrated).

    Args:
        engine: Engine of a migrated database (see :func:`notary_signer.db.migrate`).
        encryptor: Encrypts private keys; its alias is used for new keys.
        clock: Returns the current UTC time (injected by tests).
    """

    def __init__(
        self,
        engine: Engine,
        encryptor: KeyEncryptor,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._engine = engine
        self._enc = encryptor
        self._clock = clock or (lambda: datetime.now(UTC))

    def create(self, gun: str, role: str, algorithm: str) -> StoredKey:
        """See :meth:`KeyStore.create`."""
        self._enc.check_alias()
        signer, der = _material.generate(algorithm)
        pub = signer.public_key
        blob = self._enc.encrypt(der, keyid=pub.keyid, gun=gun, role=role)
        key = StoredKey(pub.keyid, gun, role, algorithm, pub, self._clock())
        with _db_errors("create key"), self._engine.begin() as conn:
            conn.execute(
                insert(private_keys).values(
                    keyid=key.keyid,
                    gun=gun,
                    role=role,
                    algorithm=algorithm,
                    keytype=pub.keytype,
                    scheme=pub.scheme,
                    public_key=json.dumps(pub.to_dict(), sort_keys=True),
                    passphrase_alias=self._enc.alias,
                    encrypted_private=blob,
                    created_at=key.created_at,
                    last_used=None,
                )
            )
        logger.info("created %s key %s for %s/%s", algorithm, key.keyid, gun, role)
        return key

    def import_keys(
        self,
        keys: builtins.list[tuple[str, str, str, bytes, datetime | None, datetime | None]],
    ) -> int:
        """Store existing private keys ``(gun, role, algorithm, pkcs8_der, created_at,
        last_used)`` encrypted under the current alias, in one transaction. A key
        already stored for the same GUN and role is skipped; one stored for another
        GUN or role refuses the whole import. Returns how many keys were new.

        Raises:
            SignerError: a key is already held for another GUN or role.
        """
        from cryptography.hazmat.primitives.serialization import load_der_private_key
        from securesystemslib.signer import SSlibKey

        self._enc.check_alias()
        count = 0
        with _db_errors("import keys"), self._engine.begin() as conn:
            for gun, role, algorithm, der, created_at, last_used in keys:
                pub = SSlibKey.from_crypto(load_der_private_key(der, password=None).public_key())
                found = conn.execute(
                    select(private_keys.c.gun, private_keys.c.role).where(
                        private_keys.c.keyid == pub.keyid
                    )
                ).first()
                if found is not None:
                    if (found.gun, found.role) != (gun, role):
                        raise SignerError(
                            f"key {pub.keyid} is already held for {found.gun}/{found.role}, "
                            f"not {gun}/{role}"
                        )
                    continue
                conn.execute(
                    insert(private_keys).values(
                        keyid=pub.keyid,
                        gun=gun,
                        role=role,
                        algorithm=algorithm,
                        keytype=pub.keytype,
                        scheme=pub.scheme,
                        public_key=json.dumps(pub.to_dict(), sort_keys=True),
                        passphrase_alias=self._enc.alias,
                        encrypted_private=self._enc.encrypt(
                            der, keyid=pub.keyid, gun=gun, role=role
                        ),
                        created_at=created_at or self._clock(),
                        last_used=last_used,
                    )
                )
                count += 1
        logger.info("imported %d key(s)", count)
        return count

    def get(self, keyid: str) -> StoredKey:
        """See :meth:`KeyStore.get`."""
        return _to_stored(self._fetch(keyid, _PUBLIC_COLUMNS))

    def list(self, gun: str, role: str) -> builtins.list[StoredKey]:
        """See :meth:`KeyStore.list`."""
        query = (
            select(*_PUBLIC_COLUMNS)
            .where(private_keys.c.gun == gun, private_keys.c.role == role)
            .order_by(private_keys.c.created_at, private_keys.c.keyid)
        )
        with _db_errors("list keys"), self._engine.connect() as conn:
            return [_to_stored(row) for row in conn.execute(query)]

    def signer(self, keyid: str) -> CryptoSigner:
        """See :meth:`KeyStore.signer`."""
        row = self._fetch(keyid, [*_PUBLIC_COLUMNS, private_keys.c.encrypted_private])
        key = _to_stored(row)
        der = self._enc.decrypt(row.encrypted_private, keyid=keyid, gun=key.gun, role=key.role)
        return _material.load(der, key.public_key)

    def mark_used(self, keyid: str) -> None:
        """See :meth:`KeyStore.mark_used`."""
        stmt = update(private_keys).where(private_keys.c.keyid == keyid)
        with _db_errors("mark key used"), self._engine.begin() as conn:
            conn.execute(stmt.values(last_used=self._clock()))

    def delete(self, keyid: str) -> None:
        """See :meth:`KeyStore.delete`."""
        with _db_errors("delete key"), self._engine.begin() as conn:
            result = conn.execute(delete(private_keys).where(private_keys.c.keyid == keyid))
        if result.rowcount == 0:
            raise KeyNotFoundError(f"no key {keyid}", keyid=keyid)
        logger.info("deleted key %s", keyid)

    def reencrypt(self, new_alias: str) -> int:
        """See :meth:`KeyStore.reencrypt`; one transaction, all or nothing."""
        alias = normalize_alias(new_alias)
        self._enc.check_alias(alias)
        cols = private_keys.c
        query = select(cols.keyid, cols.gun, cols.role, cols.encrypted_private).where(
            cols.passphrase_alias != alias
        )
        count = 0
        with _db_errors("re-encrypt keys"), self._engine.begin() as conn:
            for row in conn.execute(query).all():
                ids = {"keyid": row.keyid, "gun": row.gun, "role": row.role}
                der = self._enc.decrypt(row.encrypted_private, **ids)
                blob = self._enc.encrypt(der, alias=alias, **ids)
                conn.execute(
                    update(private_keys)
                    .where(cols.keyid == row.keyid)
                    .values(encrypted_private=blob, passphrase_alias=alias)
                )
                count += 1
        self._enc.use_alias(alias)
        logger.info("re-encrypted %d keys under alias %s", count, alias)
        return count

    def check_health(self) -> None:
        """See :meth:`KeyStore.check_health`: the database answers, the alias is set."""
        with _db_errors("health check"), self._engine.connect() as conn:
            conn.execute(select(private_keys.c.keyid).limit(1))
            conn.execute(text("SELECT 1"))
        self._enc.check_alias()

    def _fetch(self, keyid: str, columns: builtins.list[Any]) -> Row[Any]:
        query = select(*columns).where(private_keys.c.keyid == keyid)
        with _db_errors("read key"), self._engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise KeyNotFoundError(f"no key {keyid}", keyid=keyid)
        return row


@contextmanager
def _db_errors(what: str) -> Iterator[None]:
    """Turn SQLAlchemy errors into a SignerError (no SQL or values in the message)."""
    try:
        yield
    except SQLAlchemyError as e:
        logger.error("database error during %s: %s", what, type(e).__name__)
        raise SignerError(f"database error during {what}") from e


def _to_stored(row: Row[Any]) -> StoredKey:
    public: dict[str, Any] = json.loads(row.public_key)
    return StoredKey(
        keyid=row.keyid,
        gun=row.gun,
        role=row.role,
        algorithm=row.algorithm,
        public_key=Key.from_dict(row.keyid, public),
        created_at=row.created_at,
        last_used=row.last_used,
    )
