"""Delegated targets roles, each verified per (role, delegator) from the trusted snapshot."""

from __future__ import annotations

from typing import Any, cast

from tuf.api import exceptions as tuf_exc
from tuf.api.metadata import Metadata, Root, Targets, VerificationResult
from tuf.ngclient import UpdaterConfig

from trustctl.errors import TamperedMetadataError, TrustctlError
from trustctl.layout import delegates, parent_candidates
from trustctl.tufview.toplevel import TopLevel

__all__ = ["MAX_DELEGATIONS", "Roles"]


MAX_DELEGATIONS = UpdaterConfig().max_delegations


class Roles(TopLevel):
    """Targets-type roles as verified through their delegator (a role that verifies
    through one delegator says nothing about another delegator of the same name).
    """

    @property
    def targets(self) -> Metadata[Targets]:
        md = self.role("targets", "root")
        assert md is not None  # the snapshot lists targets, or refresh failed
        return md

    def role_bytes(self, role: str) -> bytes:
        """The verified bytes of a published targets-type role."""
        md = self.role(role)
        if md is None:
            raise KeyError(role)
        meta = self.snapshot.meta[f"{role}.json"]
        return self._state.raw[self._file_name(role, meta.version)]

    def parent_of(self, role: str) -> str | None:
        return self._parents.get(role)

    def delegator(self, role: str) -> Targets | Root:
        """The verified metadata that delegates to ``role`` (in this view)."""
        parent = self._parents.get(role) or self._find_parent(role)
        if parent is None:
            raise KeyError(role)
        self._parents.setdefault(role, parent)
        if parent == "root":
            return self.root.signed
        md = self.role(parent)
        assert md is not None
        return md.signed

    def role(self, role: str, parent: str | None = None) -> Metadata[Targets] | None:
        """The envelope of targets-type ``role`` as verified through ``parent`` (found
        by name when not given), or None if the snapshot does not list it.

        Raises:
            TrustctlError: the role does not verify through that delegator.
        """
        if role == "targets":
            parent = "root"
        self.refresh()
        parent = parent or self._parents.get(role) or self._find_parent(role)
        if parent is None:
            return None
        key = (role, parent)
        shared = self._state
        if key in shared.failures:
            raise shared.failures[key]
        if key not in shared.verified:
            try:
                shared.verified[key] = self._verify_role(role, parent)
            except TrustctlError as e:
                shared.failures[key] = e
                raise
        md = shared.verified[key]
        if md is not None:
            self._parents.setdefault(role, parent)
            if self._parents[role] == parent:
                self._used.setdefault(role, md)
        return md

    def _verify_role(self, role: str, parent: str) -> Metadata[Targets] | None:
        meta = self.snapshot.meta.get(f"{role}.json")
        if meta is None:
            return None
        if parent == "root":
            delegator: Targets | Root = self.root.signed
        else:
            parent_md = self.role(parent)
            if parent_md is None:
                return None
            delegator = parent_md.signed
            if not delegates(delegator, role):
                raise TamperedMetadataError(f"{parent} does not delegate to {role}")
        limit = meta.length or self._config.targets_max_length

        def verify(md: Metadata[Any]) -> None:
            check = delegator.get_verification_result(
                role, self.signed_payload(role, md), md.signatures
            )
            if not check:
                raise tuf_exc.UnsignedMetadataError(
                    f"{role} was signed by {len(check.signed)}/{check.threshold} keys"
                )
            self._state.checks[(role, parent)] = check

        return cast(
            Metadata[Targets],
            self._checked(self._file_name(role, meta.version), role, meta, limit, verify),
        )

    def signatures(self, role: str, parent: str) -> VerificationResult:
        """Which of ``parent``'s keys for ``role`` signed it (the role as verified
        through ``parent``), and the threshold.

        Raises:
            TrustctlError: the role does not verify through ``parent``.
        """
        md = self.role(role, parent)
        if md is None:
            raise KeyError(role)
        check = self._state.checks.get((role, parent))
        if check is None:  # verified before this was kept (not expected)
            parent_md = None if parent == "root" else self.role(parent)
            delegator = self.root.signed if parent_md is None else parent_md.signed
            check = delegator.get_verification_result(
                role, self.signed_payload(role, md), md.signatures
            )
            self._state.checks[(role, parent)] = check
        return check

    def _find_parent(self, role: str) -> str | None:
        """Which role delegates to ``role``: a role this view used (targets first),
        else the role its name points at (``a/b`` for ``a/b/c``)."""
        for name, md in [("targets", self.targets), *self._used.items()]:
            if delegates(md.signed, role):
                return name
        for candidate in parent_candidates(role):
            if candidate in ("targets", role) or candidate in self._used:
                continue
            loaded = self.role(candidate)
            if loaded is not None and delegates(loaded.signed, role):
                return candidate
        return None
