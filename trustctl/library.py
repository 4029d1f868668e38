"""trustctl as a library: one call per user story, over collaborators passed in.

==================  ===========================================  ========================
call                story                                        command
==================  ===========================================  ========================
:func:`sign_tags`   bind tags to manifest digests and publish    ``trustctl sign``
:func:`verify_tags` what a TUF client trusts for tags            ``trustctl verify``
:func:`add_signer`  let a team member sign tags                  ``trustctl signer add``
:func:`rotate_key`  replace a role's or a signer's key           ``trustctl key rotate``
==================  ===========================================  ========================

The click commands call these and only print what they return. The calls take what
they work with: a :class:`~trustctl.repo.Publisher` (its
:class:`~trustctl.repo.Services`: the server client, the key store, a factory of
verified views, the pending store, the clock) or a verified
:class:`~trustctl.tufview.TrustedRepository`; they never build the CLI's context
object. A long-running process that verifies many tags keeps a
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

from trustctl.changes import Change
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
    "Rotated",
    "SignedTags",
    "TagToSign",
    "add_signer",
    "add_signer_change",
    "rotate_key",
    "sign_changes",
    "sign_tags",
    "verify_tags",
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
    return SignedTags(result, changes, status)


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
