"""trustctl as a library: one call per user story, over collaborators passed in.

=======================  ======================================  ============================
call                     story                                   command
=======================  ======================================  ============================
:func:`sign_tags`        bind tags to manifest digests, publish  ``trustctl sign``
:func:`verify_tags`      what a TUF client trusts for tags       ``trustctl verify``
:func:`revoke_tags`      take tags' signatures back              ``trustctl revoke``
:func:`add_signer`       let a team member sign tags             ``trustctl signer add``
:func:`remove_signer`    stop counting a signer (or its keys)    ``trustctl signer remove``
:func:`set_signer_paths` choose the tags the signers hold         ``trustctl signer paths``
:func:`rotate_key`       replace a role's or a signer's key      ``trustctl key rotate``
:func:`witness_role`     re-sign a role unchanged (renew)        ``trustctl witness``
:func:`stage`            keep changes to publish later           ``--no-publish``
:func:`publish_staged`   publish what was staged                 ``trustctl publish``
=======================  ======================================  ============================

The click commands call these and only print what they return. The calls take what
they work with: a :class:`~trustctl.repo.Publisher` (its
:class:`~trustctl.repo.Services`: the server client, the key store, a factory of
verified views, the pending store, the clock), a verified
:class:`~trustctl.tufview.TrustedRepository`, or the repository's
:class:`~trustctl.changes.Changelist` of staged changes; they never build the CLI's
context object. A story that can be staged instead of published has a function
returning its changes (:func:`sign_changes`, :func:`revoke_changes`,
:func:`add_signer_change`, :func:`remove_signer_change`,
:func:`set_signer_paths_change`) to pass to :func:`stage`. A long-running process that verifies many tags keeps a
:class:`trustctl.api.Verifier` instead (docs/cli.md, "Library API").

Example:
    >>> publisher = Publisher(gun, Services(client=client, keystore=keystore,
    ...     open_trusted=open_trusted, pending_store=pending_store))  # doctest: +SKIP
    >>> signed = sign_tags(publisher, [TagToSign("v1", "sha256:ab..", 528, MEDIA)])  # doctest: +SKIP
    >>> signed.status  # doctest: +SKIP
    ['published']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from trustctl.changes import Change, Changelist
from trustctl.errors import TrustctlError

if TYPE_CHECKING:
    from securesystemslib.signer import Key

    from trustctl.admin import Rotation
    from trustctl.pending import PendingStore
    from trustctl.reference import ImageRef
    from trustctl.registry import RegistryClient
    from trustctl.repo import Publisher, PublishResult
    from trustctl.tufview import TrustedRepository
    from trustctl.verify import VerifiedTag

__all__ = [
    "Publication",
    "RevokedTags",
    "Rotated",
    "SignedTags",
    "TagToSign",
    "add_signer",
    "add_signer_change",
    "publish_staged",
    "remove_signer",
    "remove_signer_change",
    "revoke_changes",
    "revoke_tags",
    "rotate_key",
    "set_signer_paths",
    "set_signer_paths_change",
    "sign_changes",
    "sign_tags",
    "stage",
    "verify_tags",
    "witness_role",
]


@dataclass(frozen=True)
class TagToSign:
    """A tag and the manifest it is bound to (as the registry describes it)."""

    tag: str
    digest: str  # sha256:<hex>
    size: int
    media_type: str


@dataclass
class Publication:
    """A call's publish: what it did, and the changes it published."""

    result: PublishResult
    changes: list[Change]


@dataclass
class SignedTags(Publication):
    """What :func:`sign_tags` did, and the status of each tag in order (``published``,
    ``pending``: signed here but short of its threshold, or ``unchanged``: it was
    already signed so)."""

    status: list[str] = field(default_factory=list)


def sign_changes(tags: Sequence[TagToSign], *, role: str | None = None) -> list[Change]:
    """The changes that sign ``tags`` into ``role`` (None: the role this user signs
    tags into), to publish or to stage."""
    return [
        Change.create(
            "add-target",
            tag=t.tag,
            sha256=t.digest.split(":", 1)[1],
            length=t.size,
            media_type=t.media_type,
            role=role,
        )
        for t in tags
    ]


def sign_tags(
    publisher: Publisher,
    tags: Sequence[TagToSign],
    *,
    role: str | None = None,
    replace_pending: bool = False,
) -> SignedTags:
    """Sign ``tags`` of the publisher's repository and publish them in one upload.

    Raises:
        MissingKeyError / PassphraseError: no key here may sign them.
        SignersHoldTagError: a tag the signers hold, signed with an owner key.
        PendingConflictError: other content already waits for signatures.
        TrustctlError: verification, network or server errors.
    """
    changes = sign_changes(tags, role=role)
    result = publisher.publish(changes, replace_pending=replace_pending)
    return SignedTags(result, changes, _status(result, changes))


def _status(result: PublishResult, changes: Sequence[Change]) -> list[str]:
    """Each change's status after ``result``: ``unchanged`` (it touched no role),
    ``pending`` (a role it touched waits for more signatures) or ``published``."""
    pending_roles = {p.role for p in result.pending}
    status = []
    for change in changes:
        touched = result.roles_for_change.get(change.id, [])
        status.append(
            "unchanged"
            if not touched
            else "pending"
            if pending_roles.intersection(touched)
            else "published"
        )
    return status


@dataclass
class RevokedTags(Publication):
    """What :func:`revoke_tags` did, and the status of each tag in order (``published``:
    its signature is gone, ``pending``: the revocation waits for more signatures, or
    ``unchanged``: no role this user can sign held it)."""

    status: list[str] = field(default_factory=list)


def revoke_changes(tags: Sequence[str]) -> list[Change]:
    """The changes that revoke ``tags`` from every role this user can sign, to publish
    or to stage."""
    return [Change.create("remove-target", tag=tag, role=None) for tag in tags]


def revoke_tags(publisher: Publisher, tags: Sequence[str]) -> RevokedTags:
    """Remove each of ``tags`` from every role of the publisher's repository that this
    user can sign, in one upload (a tag no such role holds is ``unchanged``).

    Raises:
        MissingKeyError / PassphraseError: no key here may sign the roles holding them.
        TrustctlError: verification, network or server errors.
    """
    changes = revoke_changes(tags)
    result = publisher.publish(changes)
    return RevokedTags(result, changes, _status(result, changes))


def verify_tags(
    repo: TrustedRepository,
    refs: Sequence[ImageRef],
    *,
    registry: RegistryClient | None = None,
    registry_mode: str = "skip",
    signers: Sequence[str] = (),
    pending: PendingStore | None = None,
) -> list[VerifiedTag | TrustctlError]:
    """What a TUF client trusts for each of ``refs`` (tags of the repository ``repo``
    verifies), or the error that says why it does not hold (see
    :func:`~trustctl.verify.verify_tag`: ``registry_mode`` ``tag``, ``digest`` or
    ``skip``; ``signers`` that must have signed; ``pending`` only improves messages)."""
    from trustctl.tufview import prefetch_bins
    from trustctl.verify import verify_tag

    repo.refresh()
    prefetch_bins(repo, [str(ref.tag) for ref in refs])
    answers: list[VerifiedTag | TrustctlError] = []
    for ref in refs:
        try:
            answers.append(
                verify_tag(
                    repo,
                    ref,
                    registry=registry,
                    registry_mode=registry_mode,
                    required_signers=signers,
                    pending=pending,
                )
            )
        except TrustctlError as e:
            answers.append(e)
    return answers


def add_signer_change(
    name: str,
    keys: Sequence[Key],
    *,
    threshold: int | None = None,
    paths: Sequence[str] = (),
    force: bool = False,
) -> Change:
    """The change that adds signer ``name`` (see :func:`add_signer`), to publish or stage."""
    from trustctl.admin import key_doc
    from trustctl.layout import check_signer_name

    return Change.create(
        "add-signer",
        name=check_signer_name(name),
        keys=[key_doc(k) for k in keys],
        threshold=threshold,
        paths=list(paths) or None,
        force=force,
    )


def add_signer(
    publisher: Publisher,
    name: str,
    keys: Sequence[Key],
    *,
    threshold: int | None = None,
    paths: Sequence[str] = (),
    force: bool = False,
) -> Publication:
    """Let ``name`` sign tags with ``keys``: the signers hold the tags matching ``paths``
    (default every tag), which then count only with ``threshold`` signer keys.

    Raises:
        UsageError: a bad name, a key of another signer, or an unreachable threshold.
        ThresholdError: signed tags would stop verifying (pass ``force``).
        MissingKeyError: this machine does not hold the owner's keys.
        TrustctlError: verification, network or server errors.
    """
    change = add_signer_change(name, keys, threshold=threshold, paths=paths, force=force)
    return Publication(publisher.publish([change]), [change])


def remove_signer_change(
    name: str,
    *,
    keyids: Sequence[str] = (),
    threshold: int | None = None,
    force: bool = False,
) -> Change:
    """The change that removes signer ``name`` (see :func:`remove_signer`), to publish
    or stage."""
    return Change.create(
        "remove-signer",
        name=name,
        keyids=list(keyids) or None,
        threshold=threshold,
        force=force,
    )


def remove_signer(
    publisher: Publisher,
    name: str,
    *,
    keyids: Sequence[str] = (),
    threshold: int | None = None,
    force: bool = False,
) -> Publication:
    """Stop counting ``name``'s signatures (only those of ``keyids`` when given), with
    ``threshold`` for the signer keys that remain.

    Raises:
        UsageError: an unknown signer or key, or an unreachable threshold.
        ThresholdError: signed tags would stop verifying (pass ``force``).
        MissingKeyError: this machine does not hold the owner's keys.
        TrustctlError: verification, network or server errors.
    """
    change = remove_signer_change(name, keyids=keyids, threshold=threshold, force=force)
    return Publication(publisher.publish([change]), [change])


def set_signer_paths_change(patterns: Sequence[str], *, force: bool = False) -> Change:
    """The change that sets the tags the signers hold (see :func:`set_signer_paths`), to
    publish or stage."""
    return Change.create("set-paths", paths=list(patterns), force=force)


def set_signer_paths(
    publisher: Publisher, patterns: Sequence[str], *, force: bool = False
) -> Publication:
    """Let the signers hold the tags matching ``patterns`` (e.g. ``v*``): those count
    only with the signers' threshold; other tags stay the owner's bins key's.

    Raises:
        ThresholdError: signed tags would stop verifying (pass ``force``).
        MissingKeyError: this machine does not hold the owner's keys.
        TrustctlError: verification, network or server errors.
    """
    change = set_signer_paths_change(patterns, force=force)
    return Publication(publisher.publish([change]), [change])


def witness_role(publisher: Publisher, role: str) -> Publication:
    """Re-sign ``role`` without changing it: adds this user's signature, renews its expiry.

    Raises:
        MissingKeyError: no key here may sign ``role``.
        TrustctlError: verification, network or server errors.
    """
    change = Change.create("witness", role=role)
    return Publication(publisher.publish([change]), [change])


def stage(staged: Changelist, changes: Sequence[Change]) -> list[Change]:
    """Keep ``changes`` in ``staged`` (the repository's changelist) to publish later
    with :func:`publish_staged`; nothing is signed or sent. Returns them."""
    staged.stage(*changes)
    return list(changes)


def publish_staged(
    publisher: Publisher, staged: Changelist, *, replace_pending: bool = False
) -> Publication:
    """Publish every change in ``staged`` (the publisher's repository's changelist) in
    one upload and unstage them; with nothing staged, publish nothing. When the
    publish fails they stay staged.

    Raises:
        TrustctlError: as :meth:`~trustctl.repo.Publisher.publish` (the changes stay).
    """
    changes = staged.entries()
    if not changes:
        from trustctl.repo import PublishResult

        return Publication(PublishResult(), [])
    result = publisher.publish(changes, replace_pending=replace_pending)
    staged.remove(c.id for c in changes)
    return Publication(result, changes)


@dataclass
class Rotated:
    """What :func:`rotate_key` did: the rotation (new and old key ids, the steps left
    to others) and the publish."""

    rotation: Rotation
    result: PublishResult


def rotate_key(
    publisher: Publisher, role: str, *, new_public: Key | None = None, algorithm: str = "ecdsa"
) -> Rotated:
    """Replace the key of ``role``: ``root``, ``targets``, ``snapshot``, ``timestamp``,
    ``bins``, or a signer's name (see :mod:`trustctl.admin`), and publish it.

    Raises:
        UsageError: an unknown role or signer, or ``new_public`` where it makes no sense.
        MissingKeyError: a key the rotation must sign with is not here.
        TrustctlError: verification, network or server errors.
    """
    from trustctl.admin import rotation_changes

    services = publisher.services
    rotation = rotation_changes(
        publisher.gun,
        role,
        repo=services.open_trusted(),
        client=services.client,
        keystore=services.keystore,
        new_public=new_public,
        algorithm=algorithm,
    )
    return Rotated(rotation, publisher.publish(rotation.changes))
