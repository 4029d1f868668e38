"""What ``trustctl bundle create`` takes of a repository: the files its client
workflow reads, byte-exact as the trust server serves them.

A repository is collected in the dialect of the ``root.json`` its server serves
(Notary's ``"_type": "Root"``, else TUF 1.0). Nothing is trusted here: the gate
verifies the bundle's files by the root it pinned, with the workflow that pin
chooses, exactly as online.

* TUF 1.0 (python-tuf's workflow): ``N.root.json`` from 1 up, ``timestamp.json``,
  the snapshot and every role it lists (by version with consistent snapshots).
* Notary (:class:`~trustctl.notary.updater.NotaryUpdater`): ``root.json``, the
  older roots ``N.root.json`` a client that verified one of them walks through,
  ``timestamp.json``, the snapshot by the hash the timestamp signed and every role
  the snapshot lists by its hash (``targets``, ``targets/releases``, ...). Hashes and
  lengths are checked on the way, so an inconsistent server is named at once rather
  than by a gate later.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from trustctl.gate.bundle import BundleRefusedError
from trustctl.notary.model import check_hashes, parse_root, parse_snapshot, parse_timestamp
from trustctl.notary.updater import MAX_ROOT_WALK, file_name, is_notary_root

__all__ = ["GetFile", "collect", "collect_notary", "collect_tuf"]

GetFile = Callable[[str], "bytes | None"]
"""``get_file(name)``: the served bytes of a metadata file, None when absent (404)."""


def collect(get_file: GetFile) -> dict[str, bytes]:
    """A repository's metadata as served, in its dialect (file name -> bytes).

    Raises:
        BundleRefusedError: the server lacks a file the workflow needs.
        TamperedMetadataError: a Notary file is malformed, or does not match the
            hash and length signed above it.
    """
    root = get_file("root.json")
    if root is not None and is_notary_root(root):
        return collect_notary(get_file, root)
    return collect_tuf(get_file)


def collect_notary(get_file: GetFile, root: bytes) -> dict[str, bytes]:
    """A Notary-dialect repository's files (``root`` is its served ``root.json``)."""
    files = {"root.json": root}
    newest = parse_root(root).file.version
    for version in range(newest - 1, max(newest - MAX_ROOT_WALK, 0), -1):
        older = get_file(f"{version}.root.json")
        if older is None:
            break  # a client that verified an older root cannot walk past the gap
        files[f"{version}.root.json"] = older
    timestamp = get_file("timestamp.json")
    if timestamp is None:
        raise BundleRefusedError("the trust server has no timestamp for this repository")
    files["timestamp.json"] = timestamp
    snapshot_entry = parse_timestamp(timestamp).snapshot_meta
    snapshot = _by_hash(get_file, "snapshot", snapshot_entry, files)
    for role, entry in parse_snapshot(snapshot).meta.items():
        if role != "root":  # the client compares the snapshot's root entry, never fetches it
            _by_hash(get_file, role, entry, files)
    return files


def _by_hash(
    get_file: GetFile, role: str, entry: dict[str, object], files: dict[str, bytes]
) -> bytes:
    name = file_name(role, entry)
    data = get_file(name)
    if data is None:
        raise BundleRefusedError(
            f"the trust server has no {name}, which the signed metadata names for {role}"
        )
    check_hashes(data, entry, f"{name} as served")
    files[name] = data
    return data


def collect_tuf(get_file: GetFile) -> dict[str, bytes]:
    """A TUF 1.0 repository's files: the root chain, timestamp, snapshot, and every
    role the snapshot lists."""
    files: dict[str, bytes] = {}
    n = 1
    while n < 10_000:
        data = get_file(f"{n}.root.json")
        if data is None:
            break
        files[f"{n}.root.json"] = data
        n += 1
    if not files:
        raise BundleRefusedError("the trust server has no root for this repository")
    consistent = json.loads(files[f"{n - 1}.root.json"])["signed"].get("consistent_snapshot", False)
    timestamp = get_file("timestamp.json")
    if timestamp is None:
        raise BundleRefusedError("the trust server has no timestamp for this repository")
    files["timestamp.json"] = timestamp

    def versioned(role_file: str, version: int) -> str:
        return f"{version}.{role_file}" if consistent else role_file

    snap_version = json.loads(timestamp)["signed"]["meta"]["snapshot.json"]["version"]
    snap_name = versioned("snapshot.json", snap_version)
    snapshot = get_file(snap_name)
    if snapshot is None:
        raise BundleRefusedError(f"the trust server has no {snap_name}")
    files[snap_name] = snapshot
    for role_file, meta in json.loads(snapshot)["signed"]["meta"].items():
        name = versioned(role_file, meta["version"])
        data = get_file(name)
        if data is None:
            raise BundleRefusedError(f"the trust server has no {name}")
        files[name] = data
    return files
