"""One path: python-tuf's decision (``get_targetinfo``) and the label of where it came from."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from tuf.api import exceptions as tuf_exc
from tuf.api.metadata import Metadata, TargetFile, Targets
from tuf.api.serialization import DeserializationError

from trustctl.errors import TamperedMetadataError, TrustctlError
from trustctl.tufview.errors import UnpublishedRoleError, map_tuf_error
from trustctl.tufview.roles import MAX_DELEGATIONS, Roles

__all__ = ["FoundTarget", "Lookup"]


@dataclass(frozen=True)
class FoundTarget:
    """The target entry python-tuf trusts for ``path``, labelled: the role that
    carries it and the delegator it was verified through."""

    path: str
    target: TargetFile
    role: str
    parent: str


class Lookup(Roles):
    """python-tuf decides a path; the label walk (python-tuf's order over the verified
    roles) says which role and delegator carried the entry, or the answer is refused.
    """

    def decide(self, path: str) -> TargetFile | None:
        """python-tuf's answer for ``path``: the target entry a TUF client trusts, or None.

        Raises:
            UnpublishedRoleError: the lookup reaches a delegated role missing from the
                snapshot (python-tuf refuses to look past it).
            TrustctlError: python-tuf refused the repository on the way.
        """
        self.refresh()
        if path in self._decisions:
            return self._decisions[path]
        accepted = False
        try:
            target = self._updater.get_targetinfo(path)
            accepted = True
        except tuf_exc.RepositoryError as e:
            unpublished = self._unpublished_on_walk(path)
            if unpublished is not None:
                raise UnpublishedRoleError(
                    f"{self.gun}:{path} cannot be verified: a TUF client looking for it reaches "
                    f"{unpublished}, which is delegated but not published (not in the snapshot), "
                    "and refuses to look further",
                    role=unpublished,
                    hint="nothing that role would list counts until it is published",
                ) from e
            raise map_tuf_error(e, self.gun, self._server) from e
        except (tuf_exc.DownloadError, DeserializationError) as e:
            raise map_tuf_error(e, self.gun, self._server) from e
        finally:
            if accepted:
                self._keep_downloads()
            else:
                self._drop_downloads()
        self._decisions[path] = target
        return target

    def download_target(self, target: TargetFile, directory: Path, base_url: str) -> Path:
        """Download an artifact python-tuf trusts into ``directory`` (if not there yet),
        checked against the entry's length and hashes (``Updater.download_target``)."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / quote(target.path, safe="")
        if self._updater.find_cached_target(target, str(path)) is None:
            self._guard(
                lambda: self._updater.download_target(target, str(path), target_base_url=base_url)
            )
        return path

    def _walk(
        self, path: str, *, published_only: bool = True
    ) -> Iterator[tuple[str, str, Metadata[Targets] | None]]:
        """The roles a lookup of ``path`` visits, as (role, delegator, metadata), in
        python-tuf's order (pre-order, depth first; a terminating delegation stops it).

        Raises:
            TrustctlError: a role on the way does not verify.
        """
        to_visit = [("targets", "root")]
        visited: set[str] = set()
        while to_visit and len(visited) <= MAX_DELEGATIONS:
            name, parent = to_visit.pop()
            if name in visited:
                continue
            md = self.role(name, parent)
            if md is None:
                if not published_only:
                    yield name, parent, None
                visited.add(name)
                continue
            yield name, parent, md
            visited.add(name)
            delegations = md.signed.delegations
            if delegations is None:
                continue
            children = []
            for child, terminating in delegations.get_roles_for_target(path):
                children.append((child, name))
                if terminating:
                    to_visit = []
                    break
            to_visit.extend(reversed(children))

    def _unpublished_on_walk(self, path: str) -> str | None:
        try:
            for name, _parent, md in self._walk(path, published_only=False):
                if md is None:
                    return name
                if path in md.signed.targets:
                    return None
        except TrustctlError:
            return None
        return None

    def _label(self, path: str, target: TargetFile) -> FoundTarget:
        """Where python-tuf's entry for ``path`` came from (role and delegator).

        Raises:
            TamperedMetadataError: the labels disagree with python-tuf.
        """
        for name, parent, md in self._walk(path):
            assert md is not None
            entry = md.signed.targets.get(path)
            if entry is None:
                continue
            if entry != target:
                break
            return FoundTarget(path, target, name, parent)
        raise TamperedMetadataError(
            f"the trust data for {self.gun} changed while {path} was verified (python-tuf and the "
            "signature labels saw different metadata); this may be an attack",
            hint="run the command again; if it persists, do not deploy from it",
        )

    def lookup(self, path: str) -> FoundTarget | None:
        """python-tuf's entry for ``path`` (:meth:`decide`), labelled with its role.

        Raises:
            UnpublishedRoleError: python-tuf refuses at a delegated, unpublished role.
            TrustctlError: python-tuf refused the repository on the way.
        """
        target = self.decide(path)
        return None if target is None else self._label(path, target)

    def roles_for(self, path: str) -> list[tuple[str, str]]:
        """Every published role a lookup of ``path`` may visit, as (role, parent), in
        lookup order, without stopping where ``path`` is found (``revoke`` needs all).

        Raises:
            TrustctlError: a role on the way fails verification.
        """
        return [(name, parent) for name, parent, _ in self._walk(path)]
