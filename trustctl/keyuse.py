"""Whether a local key is still used: ``current``, ``retired`` or ``unknown``.

``key list`` marks each key of the local store against the newest *verified* metadata
of its repository on this machine (python-tuf's cache, refreshed first when the
server answers):

* a root key is current while the root lists it as a root key; the targets key while
  the root lists it for ``targets``; the bins key while ``targets`` delegates the
  owner's hash bins to it;
* a signer key is current while some known repository delegates to it, and retired
  when a known repository has a signer of that name with other keys (a rotation);
* otherwise ``unknown``: no verified metadata of its repository here.

Pure: functions of parsed metadata, no I/O.

Example:
    >>> key_status(info, {"127.0.0.1:5000/app": state})  # doctest: +SKIP
    'retired'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trustctl.layout import owner_bins, signer_roles

if TYPE_CHECKING:
    from tuf.api.metadata import Root, Targets

    from trustctl.keys import KeyInfo

__all__ = ["CURRENT", "RETIRED", "UNKNOWN", "RepoKeys", "key_status"]

CURRENT, RETIRED, UNKNOWN = "current", "retired", "unknown"


@dataclass(frozen=True)
class RepoKeys:
    """The keys one repository's verified metadata lists, by use."""

    root: frozenset[str]
    targets: frozenset[str]
    bins: frozenset[str]
    signers: Mapping[str, frozenset[str]]

    @classmethod
    def of(cls, root: Root, targets: Targets | None) -> RepoKeys:
        bins = owner_bins(targets) if targets is not None else None
        signers = {
            name: frozenset(ids)
            for name, ids in (signer_roles(targets) if targets is not None else {}).items()
        }
        return cls(
            frozenset(root.roles["root"].keyids),
            frozenset(root.roles["targets"].keyids),
            frozenset(bins.keyids if bins is not None else ()),
            signers,
        )


def key_status(info: KeyInfo, repos: Mapping[str, RepoKeys]) -> str:
    """``current``, ``retired`` or ``unknown`` for one local key (see module docstring)."""
    if info.role in ("root", "targets"):
        repo = repos.get(info.gun or "")
        if repo is None:
            return UNKNOWN
        if info.role == "root":
            listed = repo.root
        elif info.name == "bins":
            listed = repo.bins
        else:
            listed = repo.targets
        return CURRENT if info.keyid in listed else RETIRED
    known = (
        [repos[info.gun]] if info.gun is not None and info.gun in repos else list(repos.values())
    )
    if any(info.keyid in ids for repo in known for ids in repo.signers.values()):
        return CURRENT
    if info.name and any(info.name in repo.signers for repo in known):
        return RETIRED
    return UNKNOWN
