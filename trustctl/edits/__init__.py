"""Staged changes as typed edits of a repository's metadata.

Each staged change (:class:`trustctl.changes.Change`: an action and its data, as
stored) becomes one small :class:`Edit` (:func:`edit_for`). A publish attempt runs
them in three steps: fetch everything they read from the verified repository
(:meth:`Published.fetch`), apply them to working copies without network access
(:class:`Plan`, :meth:`Edit.apply`), then sign and publish (:mod:`trustctl.repo`).

==================  =================================  ===========================
action              edit                               module
==================  =================================  ===========================
``add-target``      :class:`AddTarget`                 :mod:`~trustctl.edits.tags`
``remove-target``   :class:`RemoveTarget`              :mod:`~trustctl.edits.tags`
``add-signer``      :class:`AddSigner`                 :mod:`~trustctl.edits.signers`
``remove-signer``   :class:`RemoveSigner`              :mod:`~trustctl.edits.signers`
``set-threshold``   :class:`SetThreshold`              :mod:`~trustctl.edits.signers`
``set-paths``       :class:`SetPaths`                  :mod:`~trustctl.edits.signers`
``witness``         :class:`Witness`                   :mod:`~trustctl.edits.witness`
``rotate-root``     :class:`RotateRoot`                :mod:`~trustctl.edits.rotation`
``rotate-top``      :class:`RotateTop`                 :mod:`~trustctl.edits.rotation`
``rotate-bins``     :class:`RotateBins`                :mod:`~trustctl.edits.rotation`
==================  =================================  ===========================

Example:
    >>> edits = [edit_for(change) for change in changes]  # doctest: +SKIP
    >>> plan = Plan(Published.fetch(repo, edits), keystore, now)  # doctest: +SKIP
    >>> changed = [edit.apply(plan) for edit in edits]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from trustctl.edits.plan import EXPIRY_DAYS, Edit, Plan
from trustctl.edits.published import NotFetchedError, Published
from trustctl.edits.rotation import RotateBins, RotateRoot, RotateTop
from trustctl.edits.signers import AddSigner, RemoveSigner, SetPaths, SetThreshold
from trustctl.edits.tags import AddTarget, RemoveTarget
from trustctl.edits.witness import Witness
from trustctl.layout import RELEASES, check_signer_name, signer_roles

if TYPE_CHECKING:
    from trustctl.changes import Change

__all__ = [
    "EDITS",
    "EXPIRY_DAYS",
    "RELEASES",
    "AddSigner",
    "AddTarget",
    "Edit",
    "NotFetchedError",
    "Plan",
    "Published",
    "RemoveSigner",
    "RemoveTarget",
    "RotateBins",
    "RotateRoot",
    "RotateTop",
    "SetPaths",
    "SetThreshold",
    "Witness",
    "check_signer_name",
    "edit_for",
    "signer_roles",
]

# The edit of each staged action: its ``from_data`` reads a change's stored data.
EDITS: dict[str, Callable[[Mapping[str, Any]], Edit]] = {
    AddTarget.action: AddTarget.from_data,
    RemoveTarget.action: RemoveTarget.from_data,
    AddSigner.action: AddSigner.from_data,
    RemoveSigner.action: RemoveSigner.from_data,
    SetThreshold.action: SetThreshold.from_data,
    SetPaths.action: SetPaths.from_data,
    Witness.action: Witness.from_data,
    RotateRoot.action: RotateRoot.from_data,
    RotateTop.action: RotateTop.from_data,
    RotateBins.action: RotateBins.from_data,
}


def edit_for(change: Change) -> Edit:
    """The typed edit of a staged change.

    Raises:
        KeyError: an unknown action.
    """
    return EDITS[change.action](change.data)
