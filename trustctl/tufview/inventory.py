"""Every tag of a repository (``inspect``) and parallel downloads of many roles."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from tuf.api import exceptions as tuf_exc
from tuf.api.metadata import Metadata, Targets

from trustctl.errors import TrustctlError
from trustctl.tufview.lookup import FoundTarget, Lookup
from trustctl.tufview.roles import MAX_DELEGATIONS

__all__ = ["Inventory", "prefetch_bins"]

logger = logging.getLogger(__name__)

MAX_PREFETCH_BYTES = 32 * 1024 * 1024
PREFETCH_BIN_WORKERS = 4  # the transport keeps 4 connections per host


class Inventory(Lookup):
    """Every target a TUF client trusts, and prefetching of the roles that costs."""

    def all_targets(self) -> tuple[list[FoundTarget], dict[str, TrustctlError]]:
        """Every target a TUF client trusts, from every published role, plus the roles
        that failed to verify.

        Candidate paths come from every published role (hash bins included: this is
        what ``inspect`` costs); python-tuf decides each path (a path listed by several
        roles is reported once, with the entry python-tuf trusts).
        """
        failures: dict[str, TrustctlError] = {}
        where: dict[str, list[tuple[str, str]]] = {}
        self.prefetch([m[: -len(".json")] for m in self.snapshot.meta if m != "targets.json"])
        queue = [("targets", "root")]
        seen: set[tuple[str, str]] = set()
        while queue:
            name, parent = queue.pop(0)
            if (name, parent) in seen:
                continue
            seen.add((name, parent))
            try:
                md = self.role(name, parent)
            except TrustctlError as e:
                failures.setdefault(name, e)
                continue
            if md is None:
                continue
            for path in md.signed.targets:
                where.setdefault(path, []).append((name, parent))
            delegations = md.signed.delegations
            if delegations is not None and delegations.roles:
                queue.extend((child, name) for child in delegations.roles)
            elif delegations is not None and delegations.succinct_roles is not None:
                # only the bins that exist: a bin is created with its first tag
                queue.extend(
                    (child, name)
                    for child in delegations.succinct_roles.get_roles()
                    if self.version_of(child) > 0
                )
        found = []
        for path in sorted(where):
            try:
                target = self.decide(path)
                if target is None:
                    continue
                hits = where[path]
                name, parent = hits[0]
                md = self._state.verified.get((name, parent))
                if (
                    len(hits) == 1
                    and md is not None
                    and md.signed.targets.get(path) == target
                    and self._plainly_reached(name, path, failures)
                ):
                    found.append(FoundTarget(path, target, name, parent))
                    continue
                found.append(self._label(path, target))
            except TrustctlError as e:
                logger.debug("%s: %s", path, e)
                continue
        return found, failures

    def _used_md(self, name: str) -> Metadata[Targets] | None:
        return self.targets if name == "targets" else self._used.get(name)

    def _plainly_reached(self, role: str, path: str, failures: dict[str, TrustctlError]) -> bool:
        """True when a lookup of ``path`` surely ends in ``role`` (its only holder):
        every delegation from ``targets`` down admits the path, and no role listed
        before one on the way is terminating or leads to hash bins (which end a
        lookup). Otherwise the caller runs the label walk: this only saves time."""
        child = role
        while child != "targets":
            parent = self._parents.get(child)
            if parent is None or parent == "root":
                return False
            md = self._used_md(parent)
            if md is None:
                return False
            d = md.signed.delegations
            if d is None:
                return False
            if d.roles is not None:
                delegated = d.roles.get(child)
                if delegated is None or not delegated.is_delegated_path(path):
                    return False
                if self._may_cut(parent, child, failures):
                    return False
            elif d.succinct_roles is None or d.succinct_roles.get_role_for_target(path) != child:
                return False
            child = parent
        return True

    def _may_cut(self, parent: str, child: str, failures: dict[str, TrustctlError]) -> bool:
        key = (parent, child)
        if key not in self._cut_cache:
            md = self._used_md(parent)
            assert md is not None
            d = md.signed.delegations
            assert d is not None and d.roles is not None
            cut = False
            for name, delegated in d.roles.items():
                if name == child:
                    break
                if delegated.terminating or name in failures or self._ends_lookups(name, 0):
                    cut = True
                    break
            self._cut_cache[key] = cut
        return self._cut_cache[key]

    def _ends_lookups(self, role: str, depth: int) -> bool:
        """Whether a lookup entering ``role`` may stop inside it (terminating or bins)."""
        md = self._used.get(role)
        if md is None or md.signed.delegations is None:
            return md is None  # not verified in this view: assume it may
        d = md.signed.delegations
        if d.succinct_roles is not None or depth > MAX_DELEGATIONS:
            return True
        return any(
            r.terminating or self._ends_lookups(name, depth + 1)
            for name, r in (d.roles or {}).items()
        )

    def prefetch(self, roles: list[str], workers: int = 8) -> None:
        """Download many published roles in parallel (``inspect``: hundreds of bins).

        Only a speed-up: the files are handed to python-tuf and to the labels as
        unverified downloads, checked like any other when a role is loaded.
        """
        self.refresh()
        snapshot = self.snapshot
        wanted = []
        for role in roles:
            meta = snapshot.meta.get(f"{role}.json")
            if meta is None:
                continue
            name = self._file_name(role, meta.version)
            if name in self._state.raw or name in self._fetcher.seen:
                continue
            stored = self._store.get(role) or self._local_copy(role)
            if stored is not None:
                try:
                    meta.verify_length_and_hashes(stored)
                    if meta.hashes:
                        continue  # python-tuf reads its own copy; labels take this one
                except tuf_exc.LengthOrHashMismatchError:
                    pass
            wanted.append((name, meta.length))
        if len(wanted) < 2:
            return
        base = self._metadata_url
        inner = self._fetcher.inner

        def get(item: tuple[str, int | None]) -> tuple[str, bytes | None]:
            name, length = item
            try:
                return name, inner.download_bytes(f"{base}{name}", length or MAX_PREFETCH_BYTES)
            except Exception as e:  # noqa: BLE001 - the verified load downloads it again
                logger.debug("prefetching %s failed: %s", name, e)
                return name, None

        with ThreadPoolExecutor(max_workers=workers) as pool:
            for name, data in pool.map(get, wanted):
                if data is None:
                    continue
                self._state.raw[name] = data  # a candidate, verified when used
                if self.root.signed.consistent_snapshot:  # N.role.json: python-tuf may take it
                    self._fetcher.preload[name] = data


def prefetch_bins(repo: Inventory, tags: list[str]) -> None:
    """Download, a few at a time, the hash bins that looking up (or editing) many
    ``tags`` will read: the owner's bin and the signers' bin of each tag. Only a
    speed-up (see :meth:`TrustedRepository.prefetch`); nothing for fewer than 2 tags."""
    from trustctl.layout import RELEASES, owner_bins, releases_bins

    if len(tags) < 2:
        return
    bin_sets = [owner_bins(repo.targets.signed)]
    if repo.version_of(RELEASES):
        try:
            releases = repo.role(RELEASES)
        except TrustctlError:
            releases = None  # the lookup reports it
        bin_sets.append(releases_bins(releases.signed) if releases is not None else None)
    names = {bins.bin_for(tag) for bins in bin_sets if bins is not None for tag in tags}
    if len(names) > 1:
        repo.prefetch(sorted(names), workers=PREFETCH_BIN_WORKERS)
