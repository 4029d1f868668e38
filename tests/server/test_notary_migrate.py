"""notary-server import-notary's planning and checks over a notary-server SQLite
database (the same tuf_files shape as its PostgreSQL and MySQL schemas)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from notary_server.notary.migrate import ImportRefused, apply, read_notary_files
from notary_server.storage.memory import MemoryStore
from tests.notaryrepo import NotaryOwner, Signing, signed_file

GUN = "reg.example/team/app"


def _repo() -> dict[str, bytes]:
    ts_key = Signing.bare()
    owner = NotaryOwner(GUN, ts_key.obj)
    files = {
        "root": signed_file(owner.root_signed(1), owner.root),
        "targets": signed_file(owner.targets_signed(1, {"v1": b"x"}), owner.targets),
    }
    files["snapshot"] = owner.snapshot_file(1, files)
    ts = {"_type": "Timestamp", "expires": "2030-01-01T00:00:00Z", "version": 1,
          "meta": {"snapshot": {"length": 1, "hashes": {"sha256": "A" * 43 + "="}}}}  # fmt: skip
    files["timestamp"] = signed_file(ts, ts_key)
    return files


def _source(tmp_path: Path, files: dict[str, bytes], *, bad_sha: str | None = None) -> Any:
    path = tmp_path / "notary_server.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE tuf_files (id INTEGER PRIMARY KEY, created_at DATETIME, updated_at DATETIME,"
            " deleted_at DATETIME, gun TEXT, role TEXT, version INTEGER, data BLOB, sha256 TEXT)"
        )
        for role, data in files.items():
            sha = "0" * 64 if role == bad_sha else hashlib.sha256(data).hexdigest()
            db.execute("INSERT INTO tuf_files (gun, role, version, data, sha256) VALUES (?,?,?,?,?)",
                       (GUN, role, json.loads(data)["signed"]["version"], data, sha))  # fmt: skip
        db.execute("INSERT INTO tuf_files (gun, role, version, data, sha256, deleted_at) VALUES "
                   "('gone.example/x', 'root', 1, x'00', NULL, '2020-01-01')")  # fmt: skip
    return create_engine(f"sqlite:///{path}")


def test_every_live_file_is_imported_byte_for_byte_and_a_second_run_writes_nothing(tmp_path: Path):
    files = _repo()
    plan = read_notary_files(_source(tmp_path, files))
    assert set(plan.files) == {GUN}  # the soft-deleted repository is not imported
    store = MemoryStore()
    todo = plan.check_against(store)
    assert apply(store, todo) == 4
    for role, data in files.items():
        stored = store.get_current(GUN, role)
        assert stored is not None and stored.data == data
    assert plan.check_against(store) == {}


def test_a_stored_hash_that_does_not_match_its_bytes_refuses_the_import(tmp_path: Path):
    with pytest.raises(ImportRefused, match="sha256 does not match"):
        read_notary_files(_source(tmp_path, _repo(), bad_sha="targets"))


def test_a_version_we_hold_with_other_bytes_refuses_the_import_before_any_write(tmp_path: Path):
    store = MemoryStore()
    other = _repo()
    with store.transaction(GUN) as tx:
        from notary_server.storage import MetaUpdate

        tx.add([MetaUpdate("targets", 1, other["targets"])])
    plan = read_notary_files(_source(tmp_path, _repo()))
    with pytest.raises(ImportRefused, match="other bytes"):
        plan.check_against(store)
    assert store.get_current(GUN, "root") is None


def test_a_repository_without_a_notary_root_is_refused(tmp_path: Path):
    files = _repo()
    files["root"] = files["root"].replace(b'"_type":"Root"', b'"_type":"root"')
    with pytest.raises(ImportRefused, match="not a Notary root"):
        read_notary_files(_source(tmp_path, files))
