"""Bring the repositories of a notary-server 0.7.0 database into our store.

notary-server keeps every version of every role file in ``tuf_files(gun, role,
version, data, sha256, deleted_at)`` (PostgreSQL, MySQL and SQLite share the
shape). Every live row is copied byte for byte: Notary clients keep their cached
metadata and pinned root certificates, and the server goes on from the stored
versions. Before anything is written the whole source is checked (each GUN has a
Notary root, each stored hash matches its bytes, no version of ours differs from
the source's), so inconsistent input is refused without a partial write; versions
already present with the same bytes are skipped, so a second run writes nothing.
Notary's change feed ids are not carried: ours records the imported timestamps.

Example::

    plan = read_notary_files(engine)          # raises ImportRefused on bad input
    report = plan.check_against(store)        # what would be written
    apply(store, plan, report)
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from notary_server.notary.dialect import NOTARY, file_dialect
from notary_server.notary.model import FormatError, Root
from notary_server.storage import MetadataStore, MetaUpdate

__all__ = ["ImportPlan", "ImportRefused", "apply", "read_notary_files"]


class ImportRefused(Exception):
    """The source database is not something we can import as it is."""


@dataclass
class ImportPlan:
    #: gun -> role -> version -> bytes
    files: dict[str, dict[str, dict[int, bytes]]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return sum(len(v) for roles in self.files.values() for v in roles.values())

    def check_against(self, store: MetadataStore) -> dict[str, list[MetaUpdate]]:
        """The files each GUN still needs, oldest first per role.

        Raises:
            ImportRefused: a version we already store differs from the source's, or
                we store a newer version than the source's newest.
        """
        todo: dict[str, list[MetaUpdate]] = {}
        for gun, roles in sorted(self.files.items()):
            updates = []
            for role, versions in sorted(roles.items()):
                current = store.current_digest(gun, role)
                for version, data in sorted(versions.items()):
                    ours = store.get_version(gun, role, version) if current else None
                    if ours is not None:
                        if ours.data != data:
                            raise ImportRefused(
                                f"{gun}: {role} v{version} is already stored with other bytes"
                            )
                        continue
                    if current is not None and version <= current[0]:
                        raise ImportRefused(
                            f"{gun}: we store {role} v{current[0]}, which the source lacks; "
                            "import into an empty database or one filled by this import"
                        )
                    updates.append(MetaUpdate(role, version, data))
            if updates:
                todo[gun] = updates
        return todo


def _bytes(value: Any) -> bytes:
    if isinstance(value, memoryview):
        return value.tobytes()
    if isinstance(value, str):
        return value.encode("utf-8")
    return bytes(value)


def read_notary_files(engine: Any) -> ImportPlan:
    """Read and check every live row of a notary-server database's ``tuf_files``.

    Raises:
        ImportRefused: a stored sha256 does not match its bytes, a version repeats,
            or a GUN has no parseable Notary root.
    """
    from sqlalchemy import text

    query = text(
        "SELECT gun, role, version, data, sha256 FROM tuf_files "
        "WHERE deleted_at IS NULL ORDER BY gun, role, version"
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    files: dict[str, dict[str, dict[int, bytes]]] = defaultdict(lambda: defaultdict(dict))
    for row in rows:
        data = _bytes(row.data)
        where = f"{row.gun}: {row.role} v{row.version}"
        if row.sha256 and hashlib.sha256(data).hexdigest() != str(row.sha256).strip():
            raise ImportRefused(f"{where}: stored sha256 does not match its bytes")
        if row.version in files[row.gun][row.role]:
            raise ImportRefused(f"{where}: the version is stored twice")
        files[row.gun][row.role][int(row.version)] = data
    for gun, roles in files.items():
        if "root" not in roles or "timestamp" not in roles:
            raise ImportRefused(f"{gun}: no root or no timestamp; not a published repository")
        newest_root = roles["root"][max(roles["root"])]
        try:
            Root.parse(newest_root)
        except FormatError as e:
            raise ImportRefused(f"{gun}: the current root is not a Notary root: {e}") from None
        for role, versions in roles.items():
            for version, data in versions.items():
                if file_dialect(data) != NOTARY:
                    raise ImportRefused(f"{gun}: {role} v{version} is not Notary metadata")
    return ImportPlan({g: dict(r) for g, r in files.items()})


def apply(store: MetadataStore, todo: dict[str, list[MetaUpdate]]) -> int:
    """Write the planned files, one transaction per GUN; the number written."""
    written = 0
    for gun, updates in todo.items():
        with store.transaction(gun) as tx:
            tx.add(updates)
        written += len(updates)
    return written
