"""Applying staged changes to working copies of a repository's metadata.

A :class:`Plan` holds, for one publish attempt, editable copies of root, targets and
the delegated roles, made from the *verified* metadata of a
:class:`~trustctl.tufview.TrustedRepository`, and records what changed. Each change
action (:mod:`trustctl.changes`) has an ``apply`` function in :data:`APPLY`; they
are idempotent, so a publish can re-apply them on top of a newer server state (the
rebase after a version conflict).

Conventions (Docker's, see docs/cli.md "How trust works"): tags signed by team
members go into ``targets/releases`` (paths ``*``, every signer's keys, threshold K);
each signer also has a ``targets/<name>`` delegation with **no paths**, which only
names whose key is whose.

Example:
    >>> plan = Plan(repo, keystore, now)  # doctest: +SKIP
    >>> APPLY["add-target"](plan, {"tag": "v1", "sha256": "..", "length": 528, "media_type": "..", "role": None})  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trustctl.edits.plan import EXPIRY_DAYS, Plan
from trustctl.edits.rotation import _apply_rotate_bins, _apply_rotate_root, _apply_rotate_top
from trustctl.edits.signers import (
    _apply_add_signer,
    _apply_remove_signer,
    _apply_set_paths,
    _apply_set_threshold,
)
from trustctl.edits.tags import _apply_add_target, _apply_remove_target
from trustctl.edits.witness import _apply_witness
from trustctl.layout import RELEASES, check_signer_name, signer_roles

__all__ = [
    "APPLY",
    "EXPIRY_DAYS",
    "RELEASES",
    "Plan",
    "check_signer_name",
    "signer_roles",
]

APPLY: dict[str, Callable[[Plan, dict[str, Any]], list[str]]] = {
    "add-target": _apply_add_target,
    "remove-target": _apply_remove_target,
    "add-signer": _apply_add_signer,
    "remove-signer": _apply_remove_signer,
    "set-threshold": _apply_set_threshold,
    "set-paths": _apply_set_paths,
    "witness": _apply_witness,
    "rotate-root": _apply_rotate_root,
    "rotate-top": _apply_rotate_top,
    "rotate-bins": _apply_rotate_bins,
}
