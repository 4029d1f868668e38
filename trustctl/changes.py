"""Staged changes: what a user asked for, kept until it is published.

Each change is one JSON file in ``<trust dir>/tuf/<gun>/changes/``, named so that
names sort in creation order. A change records *intent* (add tag v1 with this
digest, add signer alice with this key), not a metadata diff, so that a publish can
re-apply it on top of whatever the server holds now: that is how a version conflict
is rebased.

Actions and their ``data``:

==================  ===============================================================
``add-target``      ``tag``, ``sha256``, ``length``, ``media_type``, ``role`` (or null: choose),
                    ``custom`` (optional: the target's custom data as is, when carried)
``remove-target``   ``tag``, ``role`` (or null: every role the user can sign)
``add-signer``      ``name``, ``keys`` (TUF key dicts with ``keyid``), ``threshold`` (or null)
``remove-signer``   ``name``, ``keyids`` (or null: all), ``threshold`` (or null), ``force``
``set-threshold``   ``threshold``
``witness``         ``role``: re-sign without content changes (renews expiry, adds
                    signatures of keys you hold)
==================  ===============================================================

Example:
    >>> cl = Changelist(Path("/tmp/x/changes"))  # doctest: +SKIP
    >>> cl.add("add-target", tag="v1", sha256="ab..", length=528, media_type="...", role=None)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trustctl.atomicfile import write_atomic
from trustctl.errors import UsageError

__all__ = ["ACTIONS", "Change", "Changelist"]

logger = logging.getLogger(__name__)

ACTIONS = (
    "add-target",
    "remove-target",
    "add-signer",
    "remove-signer",
    "set-threshold",
    "set-paths",
    "witness",
)


@dataclass(frozen=True)
class Change:
    """One staged change."""

    id: str
    action: str
    data: Mapping[str, Any] = field(default_factory=dict)
    created: str = ""

    def describe(self) -> str:
        """A one-line summary for ``trustctl status``."""
        d = self.data
        if self.action == "add-target":
            role = d.get("role") or "auto"
            return f"sign {d['tag']} -> sha256:{str(d['sha256'])[:12]}… ({d['length']} bytes) into {role}"
        if self.action == "remove-target":
            return f"revoke {d['tag']}" + (f" from {d['role']}" if d.get("role") else "")
        if self.action == "add-signer":
            ids = ", ".join(k["keyid"][:12] + "…" for k in d.get("keys", []))
            extra = f", threshold {d['threshold']}" if d.get("threshold") else ""
            return f"add signer {d['name']} (keys {ids}{extra})"
        if self.action == "remove-signer":
            which = (
                "all keys" if not d.get("keyids") else ", ".join(k[:12] + "…" for k in d["keyids"])
            )
            extra = f", threshold {d['threshold']}" if d.get("threshold") else ""
            return f"remove signer {d['name']} ({which}{extra})"
        if self.action == "set-threshold":
            return f"set the signer threshold to {d['threshold']}"
        if self.action == "set-paths":
            return f"signers hold the tags {' '.join(d.get('paths') or [])}"
        if self.action == "witness":
            return f"re-sign {d['role']}"
        return self.action

    @classmethod
    def create(cls, action: str, **data: Any) -> Change:
        """A new change with a fresh, time-ordered id (in memory: nothing is staged).

        Raises:
            ValueError: ``action`` is not one of :data:`ACTIONS`.
        """
        if action not in ACTIONS:
            raise ValueError(f"unknown change action {action!r}")
        change_id = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return cls(change_id, action, data, created)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "action": self.action,
            "data": dict(self.data),
            "created": self.created,
        }


class Changelist:
    """The staged changes of one GUN, in creation order."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def add(self, action: str, **data: Any) -> Change:
        """Stage a new change (see :meth:`Change.create`)."""
        change = Change.create(action, **data)
        self.stage(change)
        return change

    def stage(self, *changes: Change) -> None:
        """Write ``changes`` to the list (a command that publishes at once never does:
        what it asked for must not outlive it when it fails or is aborted)."""
        for change in changes:
            write_atomic(
                self.directory / f"{change.id}.json",
                json.dumps(change.to_dict(), sort_keys=True).encode(),
            )
            logger.debug("staged %s", change.describe())

    def entries(self) -> list[Change]:
        if not self.directory.is_dir():
            return []
        out = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                doc = json.loads(path.read_text())
                out.append(
                    Change(doc["id"], doc["action"], doc.get("data", {}), doc.get("created", ""))
                )
            except (OSError, ValueError, KeyError) as e:
                logger.warning("ignoring unreadable staged change %s: %s", path.name, e)
        return out

    def remove(self, ids: Iterable[str]) -> None:
        for change_id in ids:
            (self.directory / f"{change_id}.json").unlink(missing_ok=True)

    def reset(self, numbers: Iterable[int] | None = None) -> list[Change]:
        """Drop all staged changes, or those at the given 1-based positions.

        Raises:
            UsageError: a position is out of range.
        """
        changes = self.entries()
        if numbers is None:
            chosen = changes
        else:
            chosen = []
            for n in numbers:
                if not 1 <= n <= len(changes):
                    raise UsageError(f"there is no staged change #{n} (there are {len(changes)})")
                chosen.append(changes[n - 1])
        self.remove(c.id for c in chosen)
        return chosen
