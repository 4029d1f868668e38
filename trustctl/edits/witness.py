"""Re-signing a role without content changes (renews its expiry; a key rotation's second half)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from tuf.api.metadata import Root

from trustctl.edits.plan import Plan
from trustctl.errors import MissingKeyError, UsageError
from trustctl.layout import RELEASES, BinSet, releases_bins

if TYPE_CHECKING:
    from trustctl.edits.published import Published

__all__ = ["Witness"]


@dataclass(frozen=True)
class Witness:
    """Re-sign ``role`` as it is (renews its expiry, adds the signatures of keys held
    here); with ``if_published``, only a role that is published."""

    action: ClassVar[str] = "witness"
    role: str
    if_published: bool = False

    @classmethod
    def from_data(cls, d: Mapping[str, Any]) -> Witness:
        return cls(role=d["role"], if_published=bool(d.get("if_published")))

    def fetch(self, published: Published) -> None:
        if self.role == Root.type:
            return
        published.load(self.role)
        if self.role == RELEASES:
            published.load_signer_bins()

    def apply(self, plan: Plan) -> list[str]:
        return _witness(plan, self.role, if_published=self.if_published)


def _witness(plan: Plan, role: str, *, if_published: bool) -> list[str]:
    if role == Root.type:  # re-sign root as is: renews its expiry
        plan.root_dirty = True
        return [role]
    if role == RELEASES and plan.releases() is not None:
        signer_bins = releases_bins(plan.working(RELEASES))
        if signer_bins is not None:
            return _witness_bins(plan, signer_bins, if_published=if_published)
    if role != "targets":
        try:
            plan.parent(role)
        except UsageError:
            if if_published:
                return []
            raise UsageError(f"{plan.published.gun} has no role {role!r}") from None
    if if_published and role != "targets" and plan.published.version_of(role) == 0:
        return []
    plan.mark(role)
    return [role]


def _witness_bins(plan: Plan, signer_bins: BinSet, *, if_published: bool) -> list[str]:
    """Witness of a binned ``targets/releases``: re-sign every published signer bin
    with the signer keys held here (a key rotation), and ``targets/releases`` itself
    when the owner runs it. Reads every published bin: an administrative step."""
    marked = []
    owner, signer = plan.holds(plan.keyids_for(RELEASES)), plan.holds(signer_bins.keyids)
    if owner and (plan.published.version_of(RELEASES) > 0 or not if_published):
        plan.mark(RELEASES)
        marked.append(RELEASES)
    if signer:
        for name in signer_bins.names():
            if plan.published.version_of(name) > 0:
                plan.mark(name)
                marked.append(name)
    if not (owner or signer) and not if_published:
        raise MissingKeyError(
            f"you hold no key that signs {RELEASES} of {plan.published.gun} or its bins",
            hint="see `trustctl key list`",
        )
    return marked
