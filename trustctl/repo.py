"""Publishing: apply staged changes on top of the verified server state, sign, upload.

:class:`Publisher` is trustctl's local repository editor. A publish is one loop:

1. open a fresh :class:`~trustctl.tufview.TrustedRepository` (the full TUF client
   workflow from the pinned root: never sign on top of unverified metadata);
2. re-apply every change (intent, not diff: see :mod:`trustctl.changes`) to working
   copies of root, targets and delegated roles;
3. bump versions and expiries of what changed, sign with the keys the user holds,
   and check each signature threshold with python-tuf's verification results;
4. upload root, targets and delegated roles in one atomic request (the server builds
   snapshot and timestamp with its own keys);
5. on ``VERSION`` (someone published first) back off and go to 1: that is the rebase;
6. when the upload's answer was lost (:class:`~trustctl.errors.PublishUncertainError`:
   a reset connection, a proxy's 502 or 504), wait (:mod:`trustctl.retry`) and go to
   1, where the fresh view first tells whether that upload is stored. If it is, the
   publish is done: nothing is published twice and no version is skipped. The same
   check follows a ``VERSION`` answer, which is what a resent upload that had in fact
   been stored gets.

A delegated role whose threshold the user cannot meet alone goes to the pending
store instead (:mod:`trustctl.pending`). Before uploading a new delegation, the
publisher checks that every published delegated role still verifies under it, so a
signer removal cannot silently invalidate signed tags.

Example:
    >>> publisher = Publisher(gun, services)  # doctest: +SKIP
    >>> result = publisher.publish(changelist.entries())  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from securesystemslib.signer import Key
from tuf.api.metadata import Delegations, Metadata, Role, Root, Targets

from trustctl.changes import Change
from trustctl.client import ServerClient, VersionConflictError
from trustctl.edits import (
    EXPIRY_DAYS,
    RELEASES,
    Plan,
    Published,
    check_signer_name,
    edit_for,
    signer_roles,
)
from trustctl.errors import (
    MissingKeyError,
    PendingConflictError,
    PublishConflictError,
    PublishUncertainError,
    ThresholdError,
    TrustctlError,
    UsageError,
)
from trustctl.keys import KeyStore
from trustctl.pending import PendingStore, content_of, read_pending
from trustctl.retry import Backoff, RetryPolicy
from trustctl.tufview import TrustedRepository, prefetch_bins

__all__ = [
    "EXPIRY_DAYS",
    "RELEASES",
    "PendingOutcome",
    "PublishResult",
    "Publisher",
    "Services",
    "check_signer_name",
    "signer_roles",
]

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 25


@dataclass(frozen=True)
class PendingOutcome:
    """A role left waiting for more signatures."""

    role: str
    version: int
    signed_keyids: tuple[str, ...]
    signers: tuple[str, ...]
    threshold: int
    where: str
    replaced: bool = False

    @property
    def missing(self) -> int:
        return max(0, self.threshold - len(self.signed_keyids))


@dataclass
class PublishResult:
    """What a publish did."""

    published: dict[str, int] = field(default_factory=dict)
    pending: list[PendingOutcome] = field(default_factory=list)
    attempts: int = 0
    warnings: list[str] = field(default_factory=list)
    roles_for_change: dict[str, list[str]] = field(default_factory=dict)

    @property
    def noop(self) -> bool:
        return not self.published and not self.pending


@dataclass
class Services:
    """What the publisher needs, injected (tests pass fakes)."""

    client: ServerClient
    keystore: KeyStore
    open_trusted: Callable[[], TrustedRepository]
    pending_store: Callable[[], PendingStore]
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    sleep: Callable[[float], None] = time.sleep
    warn: Callable[[str], None] = logger.warning
    retry: RetryPolicy = field(default_factory=RetryPolicy)


# --- signing and publishing -------------------------------------------------------------


@dataclass
class _Prepared:
    files: dict[str, bytes] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    pending_puts: list[tuple[str, bytes, PendingOutcome]] = field(default_factory=list)
    pending_deletes: list[str] = field(default_factory=list)


class Publisher:
    """Publishes changes to one GUN (see module docstring)."""

    def __init__(self, gun: str, services: Services, *, max_attempts: int = MAX_ATTEMPTS) -> None:
        self.gun = gun
        self.services = services
        self.max_attempts = max_attempts

    def publish(self, changes: Sequence[Change], *, replace_pending: bool = False) -> PublishResult:
        """Apply ``changes`` on top of the current verified state and publish them.

        Raises:
            MissingKeyError, PassphraseError: a needed key is not available.
            ThresholdError: a top-level threshold cannot be met, or a change would
                leave a delegated role unverifiable.
            PendingConflictError: other content is already waiting for signatures.
            PublishConflictError: still conflicting after ``max_attempts`` tries.
            TrustctlError: verification, network or server errors.
        """
        result = PublishResult()
        edits = [edit_for(change) for change in changes]
        sent: tuple[Plan, _Prepared] | None = None  # an upload whose outcome is unknown
        backoff: Backoff | None = None
        for attempt in range(1, self.max_attempts + 1):
            result.attempts = attempt
            repo = self.services.open_trusted()
            repo.refresh()
            if sent is not None and _stored(repo, sent[1]):
                logger.info(
                    "the upload of %s whose answer was lost is stored: not sending it again",
                    self.gun,
                )
                return self._finish(*sent, result)
            sent = None
            prefetch_bins(
                repo,
                [
                    str(c.data["tag"])
                    for c in changes
                    if c.action in ("add-target", "remove-target")
                ],
            )
            # fetch everything the edits read, then edit without network access
            published = Published.fetch(repo, edits)
            plan = Plan(published, self.services.keystore, self.services.clock())
            for change, edit in zip(changes, edits, strict=True):
                result.roles_for_change[change.id] = edit.apply(plan)
            prepared = self._prepare(plan, replace_pending=replace_pending)
            _expiry_warnings(plan)
            if prepared.files:
                try:
                    self.services.client.publish(self.gun, prepared.files)
                except VersionConflictError:
                    sent = (plan, prepared)  # a resent upload that was stored gets VERSION too
                    delay = min(2.0, 0.05 * 2 ** min(attempt, 6)) * (0.5 + random.random())
                    logger.info(
                        "version conflict publishing %s (attempt %d): rebasing", self.gun, attempt
                    )
                    self.services.sleep(delay)
                    continue
                except PublishUncertainError as e:
                    sent = (plan, prepared)
                    backoff = backoff or self.services.retry.start()
                    if not backoff.wait(f"{e.message}; checking before trying again"):
                        e.message = f"{e.message} ({backoff.gave_up()})"
                        e.args = (e.message,)
                        raise
                    continue
            return self._finish(plan, prepared, result)
        raise PublishConflictError(
            f"publishing {self.gun} kept conflicting with other publishers ({self.max_attempts} attempts)",
            hint="try again; your changes stay staged (`trustctl status`)",
        )

    # --- internals ---------------------------------------------------------------

    def _finish(self, plan: Plan, prepared: _Prepared, result: PublishResult) -> PublishResult:
        """After the upload (or with nothing to upload): pending signatures, the result."""
        store = (
            self.services.pending_store
            if prepared.pending_puts or prepared.pending_deletes
            else None
        )
        for role, data, outcome in prepared.pending_puts:
            assert store is not None
            store().put(self.gun, role, data)
            result.pending.append(outcome)
        for role in prepared.pending_deletes:
            try:
                assert store is not None
                store().delete(self.gun, role)
            except TrustctlError as e:
                logger.info("could not remove the published pending %s: %s", role, e)
        result.published = prepared.versions
        result.warnings.extend(plan.warnings)
        return result

    def _prepare(self, plan: Plan, *, replace_pending: bool) -> _Prepared:
        out = _Prepared()
        keystore = self.services.keystore
        purpose = f"signing {self.gun}"
        if plan.root_dirty:
            root = plan.root
            root.version = plan.prev_root.version + 1
            root.expires = plan.now + timedelta(days=EXPIRY_DAYS["root"])
            plan.root_md.signatures.clear()
            wanted = [*plan.prev_root.roles[Root.type].keyids, *root.roles[Root.type].keyids]
            for info in keystore.held(dict.fromkeys(wanted)):
                plan.root_md.sign(keystore.signer(info.keyid, purpose=purpose), append=True)
            check = root.get_root_verification_result(
                plan.prev_root, plan.root_md.signed_bytes, plan.root_md.signatures
            )
            if not check.verified:
                raise ThresholdError(
                    f"root v{root.version} of {self.gun} needs {check.first.missing} more signature(s) from the "
                    f"current root keys and {check.second.missing} from the new ones",
                    hint="run this where the current root key is (`trustctl key list`)",
                )
            out.files["root"] = plan.root_md.to_bytes()
            out.versions["root"] = root.version
        for role in list(plan.dirty):
            self._guard_delegations(plan, role)
        for role in plan.dirty:
            self._sign_role(plan, role, out, replace_pending=replace_pending)
        return out

    def _delegator(self, plan: Plan, role: str) -> Root | Targets:
        """The role's delegator *as edited in this plan* (root for targets)."""
        return plan.delegator(role)

    def _sign_role(self, plan: Plan, role: str, out: _Prepared, *, replace_pending: bool) -> None:
        keystore = self.services.keystore
        md = plan.roles[role]
        md.signed.version = plan.base_version[role] + 1
        kind = "targets" if role == "targets" else "delegation"
        md.signed.expires = plan.now + timedelta(days=EXPIRY_DAYS[kind])
        delegator = self._delegator(plan, role)
        try:
            keyids = delegator.get_delegated_role(role).keyids
        except ValueError as e:
            raise UsageError(f"{role} is not delegated in {self.gun}") from e
        held = keystore.held(keyids)
        if not held:
            raise MissingKeyError(
                f"you hold none of the keys that can sign {role} of {self.gun}",
                hint="see `trustctl key list`; import the key with `trustctl key import`",
            )
        md.signatures.clear()
        payload = md.signed_bytes  # canonical JSON: computed once, signed and checked
        for info in held:
            signature = keystore.signer(info.keyid, purpose=f"signing {role} of {self.gun}").sign(
                payload
            )
            md.signatures[signature.keyid] = signature
        check = delegator.get_verification_result(role, payload, md.signatures)
        if check.verified:
            out.files[role] = md.to_bytes()
            out.versions[role] = md.signed.version
            if role != "targets" and check.threshold > 1:
                # with a threshold of 1 nothing waits (a stale pending file is ignored anyway)
                out.pending_deletes.append(role)
            return
        if role == "targets":
            raise ThresholdError(
                f"targets of {self.gun} needs {check.missing} more signature(s) than the keys you hold",
                hint="targets thresholds above 1 are not supported by trustctl yet",
            )
        self._pending(plan, role, md, delegator, out, replace_pending=replace_pending)

    def _pending(
        self,
        plan: Plan,
        role: str,
        md: Metadata[Targets],
        delegator: Root | Targets,
        out: _Prepared,
        *,
        replace_pending: bool,
    ) -> None:
        store = self.services.pending_store()
        keystore = self.services.keystore
        existing = read_pending(store, plan.repo, role)
        replaced = False
        if existing is not None and content_of(existing.md.signed) == content_of(md.signed):
            md = existing.md  # add our signatures to exactly the payload the others signed
            for keyid in list(md.signatures):
                if keyid not in existing.signed_keyids:  # drop anything that does not verify
                    del md.signatures[keyid]
            for info in keystore.held(delegator.get_delegated_role(role).keyids):
                md.sign(
                    keystore.signer(info.keyid, purpose=f"signing {role} of {self.gun}"),
                    append=True,
                )
        elif existing is not None and not replace_pending:
            names = _names(plan, existing.signed_keyids)
            raise PendingConflictError(
                f"{role} of {self.gun} already has a version waiting for signatures that {existing.changes_text()} "
                f"(signed by {', '.join(names)}: {len(existing.signed_keyids)} of {existing.threshold}); "
                "what you asked to sign differs from it",
                hint="sign exactly the same tags to add your signature (check the digests), or pass "
                "--replace-pending to discard it",
            )
        elif existing is not None:
            replaced = True
        check = delegator.get_verification_result(role, md.signed_bytes, md.signatures)
        if check.verified:
            out.files[role] = md.to_bytes()
            out.versions[role] = md.signed.version
            out.pending_deletes.append(role)
            return
        outcome = PendingOutcome(
            role,
            md.signed.version,
            tuple(sorted(check.signed)),
            tuple(_names(plan, check.signed)),
            check.threshold,
            store.where,
            replaced,
        )
        out.pending_puts.append((role, md.to_bytes(), outcome))

    def _guard_delegations(self, plan: Plan, role: str) -> None:
        """Refuse a new delegation that would leave a published role unverifiable.

        Only roles whose keys or threshold this change touches are checked: for the
        signers' hash bins that is every published bin (signer changes are rare
        administrative steps); signing a tag never gets here.
        """
        new = plan.working(role)
        if new.delegations is None:
            return
        try:
            old_md = plan.repo.role(role)
        except TrustctlError:
            return
        old = old_md.signed.delegations if old_md is not None else None
        if old is None:
            return
        for child in _changed_children(old, new.delegations):
            if child in plan.dirty or plan.repo.version_of(child) == 0:
                continue
            try:
                current = plan.repo.role(child, role)
            except TrustctlError:
                continue  # already unverifiable: this change cannot make it worse
            if current is None:
                continue
            check = new.get_verification_result(child, current.signed_bytes, current.signatures)
            if check.verified or plan.force:
                if not check.verified:
                    plan.warnings.append(
                        f"{child} no longer verifies: its tags stop counting until re-signed"
                    )
                continue
            count = len(current.signed.targets)
            raise ThresholdError(
                f"this change would leave {child} v{current.signed.version} signed by {len(check.signed)} of the "
                f"{check.threshold} required keys, so its {count} tag(s) would stop verifying",
                hint=f"have enough signers re-sign it first (`trustctl witness {self.gun}`) or choose another "
                "--threshold; --force accepts that those tags stop verifying until they are re-signed",
            )


def _stored(repo: TrustedRepository, prepared: _Prepared) -> bool:
    """Whether the verified repository holds exactly the roles ``prepared`` uploaded."""
    if not prepared.files:
        return False
    for role, data in prepared.files.items():
        mine = Metadata.from_bytes(data)
        if role == "root":
            stored: Metadata[Root] | Metadata[Targets] | None = repo.root
        elif repo.version_of(role) != mine.signed.version:
            return False
        else:
            try:
                stored = repo.role(role)
            except TrustctlError:
                return False
        if stored is None or stored.signed_bytes != mine.signed_bytes:
            return False
    return True


def _changed_children(old: Delegations, new: Delegations) -> list[str]:
    """Delegated roles still delegated by ``new`` whose keys or threshold differ in ``old``."""

    def signature(role: Role) -> tuple[frozenset[str], int]:
        return frozenset(role.keyids), role.threshold

    out: list[str] = []
    if old.roles is not None:
        for name, before in old.roles.items():
            after: Role | None = None
            if new.roles is not None:
                after = new.roles.get(name)
            elif new.succinct_roles is not None and new.succinct_roles.is_delegated_role(name):
                after = new.succinct_roles
            if after is not None and signature(before) != signature(after):
                out.append(name)
    elif old.succinct_roles is not None:
        s = old.succinct_roles
        if new.succinct_roles is not None:
            changed = signature(s) != signature(new.succinct_roles)
            names = list(s.get_roles()) if changed else []
        elif new.roles is not None:
            names = [
                n
                for n in s.get_roles()
                if n in new.roles and signature(s) != signature(new.roles[n])
            ]
        else:
            names = []
        out.extend(names)
    return out


EXPIRY_WARNING = timedelta(days=30)


def _expiry_warnings(plan: Plan) -> None:
    """Warn about offline-signed roles that expire soon and are not being re-signed."""
    soon = plan.now + EXPIRY_WARNING
    gun = plan.repo.gun
    if not plan.root_dirty and plan.prev_root.expires <= soon:
        plan.warnings.append(
            f"root of {gun} expires at {plan.prev_root.expires:%Y-%m-%d}: renew it with "
            f"`trustctl witness {gun} --role root` (needs the root key)"
        )
    targets = plan.repo.targets.signed
    if "targets" not in plan.dirty and targets.expires <= soon:
        plan.warnings.append(
            f"targets of {gun} expires at {targets.expires:%Y-%m-%d}: renew it with "
            f"`trustctl witness {gun} --role targets`"
        )


def _names(plan: Plan, keyids: frozenset[str] | set[str] | dict[str, Key]) -> list[str]:
    owners = signer_roles(plan.working("targets"))
    names = sorted({name for name, ids in owners.items() if set(ids) & set(keyids)})
    return names or [k[:12] + "…" for k in sorted(keyids)]
