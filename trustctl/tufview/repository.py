"""The verified view of one repository (the layers put together) and its forks."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from tuf.api.metadata import Metadata, Targets

from trustctl.tufview.inventory import Inventory

__all__ = ["TrustedRepository"]


class TrustedRepository(Inventory):
    """Verified trust data of one GUN (see the package docstring, :mod:`trustctl.tufview`).

    Args:
        gun: the repository.
        cache_dir: python-tuf's metadata directory (``<trust dir>/tuf/<gun>/metadata``).
        metadata_url: where the metadata files are (``{server}/v2/<gun>/_trust/tuf/``).
        fetcher: downloads (carries TLS trust and credentials).
        pinned_root: the trust anchor's bytes.
        server: the server's base URL, for messages.
        label_dir: trustctl's own copy of the bytes python-tuf was given
            (default: ``verified`` next to ``cache_dir``).
        preload: answers the server just gave (file name -> bytes or HTTP status),
            served once instead of asking again (see :class:`RecordingFetcher`).
        state: the guard on the trusted state in ``cache_dir``
            (:class:`~trustctl.trustedstate.TufState`): a damaged state of a repository
            verified before is refused before python-tuf reads it, and a successful
            refresh marks the repository verified.
    """

    def fork(self) -> TrustedRepository:
        """Another view of this refreshed state, for one more question (a warm process).

        It shares python-tuf's ``Updater`` and every label verified so far (per role
        and delegator), so nothing is read or verified twice; but it reports as loaded
        (``expiries``, ``loaded_roles``) only the roles it used itself, exactly like a
        fresh :class:`TrustedRepository` would.
        """
        self.refresh()
        view = object.__new__(TrustedRepository)
        view.__dict__.update(self.__dict__)
        view._parents = {"targets": "root"}
        view._used = {}
        view._cut_cache = {}
        return view

    def loaded_roles(self) -> list[tuple[str, Metadata[Targets]]]:
        """The delegated roles this view used, in the order they were loaded."""
        return [(name, md) for name, md in self._used.items() if name != "targets"]

    def loaded(self, role: str) -> Metadata[Targets] | None:
        return self.targets if role == "targets" else self._used.get(role)

    def expiries(self) -> dict[str, datetime]:
        """Expiry of every trusted role this view used (root, timestamp, snapshot, targets...)."""
        out = {
            "root": self.root.signed.expires,
            "timestamp": self.timestamp.expires,
            "snapshot": self.snapshot.expires,
        }
        for name, md in self._used.items():
            out[name] = md.signed.expires
        out.setdefault("targets", self.targets.signed.expires)
        return out

    @property
    def cache_dir(self) -> Path:
        return self._dir
