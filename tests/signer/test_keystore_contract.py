"""One contract suite for every KeyStore: memory and SQL (SQLite file)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from notary_signer.canonical import compute_keyid
from notary_signer.crypto import KeyEncryptor
from notary_signer.db import make_engine, migrate
from notary_signer.errors import KeyNotFoundError, PassphraseError, UnsupportedAlgorithmError
from notary_signer.keystore import KeyStore
from notary_signer.keystore.memory import MemoryKeyStore
from notary_signer.keystore.sql import SQLKeyStore, private_keys
from tests.secrets import remember

from .conftest import FAST_KDF, GUN, OTHER_GUN, StepClock, private_needles


@dataclass
class Backend:
    store: KeyStore
    env: dict[str, str]
    engine: Engine | None = None
    directory: Path | None = None


def _sql(env: dict[str, str], directory: Path) -> Backend:
    engine = make_engine(f"sqlite:///{directory / 'signer.db'}")
    migrate(engine)
    encryptor = KeyEncryptor(env, alias="default", kdf=FAST_KDF)
    return Backend(SQLKeyStore(engine, encryptor, clock=StepClock()), env, engine, directory)


@pytest.fixture(params=["memory", "sql"])
def backend(
    request: pytest.FixtureRequest, env: dict[str, str], tmp_path: Path
) -> Iterator[Backend]:
    if request.param == "memory":
        encryptor = KeyEncryptor(env, alias="default", kdf=FAST_KDF)
        yield Backend(MemoryKeyStore(encryptor=encryptor, clock=StepClock()), env)
        return
    made = _sql(env, tmp_path / "db")
    yield made
    assert made.engine is not None
    made.engine.dispose()


@pytest.mark.parametrize("algorithm", ["ecdsa", "ed25519"])
def test_create_get_sign_verify(backend: Backend, algorithm: str) -> None:
    store = backend.store
    key = store.create(GUN, "timestamp", algorithm)
    assert (key.gun, key.role, key.algorithm, key.last_used) == (GUN, "timestamp", algorithm, None)
    assert key.keyid == key.public_key.keyid == compute_keyid(key.public_key)
    got = store.get(key.keyid)
    assert got.public_key == key.public_key and got.created_at == key.created_at
    sig = store.signer(key.keyid).sign(b"payload")
    key.public_key.verify_signature(sig, b"payload")


def test_ecdsa_is_p256(backend: Backend) -> None:
    key = backend.store.create(GUN, "snapshot", "ecdsa")
    assert (key.public_key.keytype, key.public_key.scheme) == ("ecdsa", "ecdsa-sha2-nistp256")


def test_list_is_per_gun_and_role_oldest_first(backend: Backend) -> None:
    store = backend.store
    first = store.create(GUN, "timestamp", "ecdsa")
    store.create(GUN, "snapshot", "ecdsa")
    store.create(OTHER_GUN, "timestamp", "ecdsa")
    second = store.create(GUN, "timestamp", "ed25519")
    assert [k.keyid for k in store.list(GUN, "timestamp")] == [first.keyid, second.keyid]
    assert store.list("nobody/here", "timestamp") == []


def test_mark_used_records_time(backend: Backend) -> None:
    key = backend.store.create(GUN, "timestamp", "ecdsa")
    backend.store.mark_used(key.keyid)
    used = backend.store.get(key.keyid).last_used
    assert used is not None and used > key.created_at


def test_delete(backend: Backend) -> None:
    store = backend.store
    key = store.create(GUN, "timestamp", "ecdsa")
    store.delete(key.keyid)
    for op in (store.get, store.signer, store.delete):
        with pytest.raises(KeyNotFoundError):
            op(key.keyid)
    assert store.list(GUN, "timestamp") == []


def test_unknown_algorithm(backend: Backend) -> None:
    with pytest.raises(UnsupportedAlgorithmError):
        backend.store.create(GUN, "timestamp", "rsa")


def test_reencrypt_then_old_passphrase_can_go(backend: Backend) -> None:
    store, env = backend.store, backend.env
    keys = [store.create(GUN, "timestamp", "ecdsa"), store.create(GUN, "snapshot", "ed25519")]
    env["NOTARY_SIGNER_ROTATED"] = remember("second passphrase (test only)")
    assert store.reencrypt("rotated") == 2
    del env["NOTARY_SIGNER_DEFAULT"]
    for key in keys:
        key.public_key.verify_signature(store.signer(key.keyid).sign(b"x"), b"x")
    assert store.reencrypt("rotated") == 0
    # new keys follow the new alias
    fresh = store.create(GUN, "timestamp", "ecdsa")
    store.signer(fresh.keyid)
    store.check_health()


def test_reencrypt_to_unset_alias_changes_nothing(backend: Backend) -> None:
    store = backend.store
    key = store.create(GUN, "timestamp", "ecdsa")
    with pytest.raises(PassphraseError, match="NOTARY_SIGNER_MISSING"):
        store.reencrypt("missing")
    store.signer(key.keyid)


def test_missing_passphrase_names_the_variable(backend: Backend) -> None:
    key = backend.store.create(GUN, "timestamp", "ecdsa")
    del backend.env["NOTARY_SIGNER_DEFAULT"]
    with pytest.raises(PassphraseError, match="NOTARY_SIGNER_DEFAULT"):
        backend.store.signer(key.keyid)
    with pytest.raises(PassphraseError):
        backend.store.check_health()
    with pytest.raises(PassphraseError):
        backend.store.create(GUN, "timestamp", "ecdsa")


def test_health(backend: Backend) -> None:
    backend.store.check_health()


# --- SQL only -------------------------------------------------------------------


@pytest.fixture
def sql_backend(env: dict[str, str], tmp_path: Path) -> Iterator[Backend]:
    made = _sql(env, tmp_path / "db")
    yield made
    assert made.engine is not None
    made.engine.dispose()


def test_sql_database_never_holds_a_plain_private_key(
    sql_backend: Backend, scan_files: Callable[[Path, list[bytes]], list[str]]
) -> None:
    store, engine = sql_backend.store, sql_backend.engine
    assert engine is not None and sql_backend.directory is not None
    keys = [store.create(GUN, "timestamp", "ecdsa"), store.create(GUN, "snapshot", "ed25519")]
    needles = [n for k in keys for n in private_needles(store.signer(k.keyid))]
    with engine.connect() as conn:
        rows = conn.execute(select(private_keys)).mappings().all()
    assert len(rows) == 2
    for row in rows:
        for column, value in row.items():
            data = value if isinstance(value, bytes) else str(value).encode()
            assert not [n for n in needles if n in data], f"private key material in {column}"
        assert json.loads(row["encrypted_private"])["alias"] == row["passphrase_alias"] == "default"
    engine.dispose()  # checkpoint the WAL, then scan every file (db, -wal, -shm)
    assert scan_files(sql_backend.directory, needles) == []


def test_sql_blob_swapped_between_rows_is_refused(sql_backend: Backend) -> None:
    store, engine = sql_backend.store, sql_backend.engine
    assert engine is not None
    a = store.create(GUN, "timestamp", "ecdsa")
    b = store.create(OTHER_GUN, "timestamp", "ecdsa")
    with engine.begin() as conn:
        blob_b = conn.execute(
            select(private_keys.c.encrypted_private).where(private_keys.c.keyid == b.keyid)
        ).scalar_one()
        conn.execute(
            update(private_keys)
            .where(private_keys.c.keyid == a.keyid)
            .values(encrypted_private=blob_b)
        )
    with pytest.raises(PassphraseError, match="another row"):
        store.signer(a.keyid)


def test_sql_keys_survive_a_new_process(sql_backend: Backend) -> None:
    assert sql_backend.engine is not None
    key = sql_backend.store.create(GUN, "timestamp", "ed25519")
    reopened = SQLKeyStore(sql_backend.engine, KeyEncryptor(sql_backend.env, kdf=FAST_KDF))
    assert reopened.get(key.keyid).public_key == key.public_key
    key.public_key.verify_signature(reopened.signer(key.keyid).sign(b"x"), b"x")
