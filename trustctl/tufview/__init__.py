"""A verified view of one repository's trust data: python-tuf decides, trustctl labels.

:class:`TrustedRepository` runs the TUF client workflow with python-tuf's public
``ngclient.Updater``, bootstrapped from the pinned root: ``refresh()`` (root
rotations, each signed by the previous root; timestamp, snapshot and targets with
the rollback, freeze and mix-and-match checks) and ``get_targetinfo(path)``, which
walks the delegations and returns the one target entry a TUF client trusts for a
path, or refuses. That answer is the trust decision; nothing here overrides it.

What python-tuf does not say, trustctl needs: *who* signed the entry (the role it
came from, under which delegator, which keys signed), the k-of-n state of a role,
every tag of a repository (``inspect``), and the verified envelopes to edit on
top of (``sign``). This module derives those *labels* from the very bytes python-tuf
was given: the fetcher records every metadata file python-tuf downloads, and keeps a
copy in a small store of its own (python-tuf's cached copy of a role is tried too,
as one more candidate: a warm ``inspect`` then downloads no hash bin again; it is
checked exactly like a download). A label is only made from bytes that check out against the
trusted snapshot (version, length, hashes) and carry the delegator's signatures,
and every role is verified per (role, delegator): a role that verifies through one
delegator says nothing about another delegator of the same name. A label walk that
finds a different entry than python-tuf is refused (it may be an attack).

Every python-tuf failure leaves this module as a :class:`~trustctl.errors.TrustctlError`
(see :func:`map_tuf_error`) that says plainly when it may be an attack.
"""

from trustctl.tufview.downloads import LabelStore, RecordingFetcher
from trustctl.tufview.errors import UnpublishedRoleError, map_tuf_error
from trustctl.tufview.inventory import prefetch_bins
from trustctl.tufview.lookup import FoundTarget
from trustctl.tufview.repository import TrustedRepository
from trustctl.tufview.roles import MAX_DELEGATIONS

__all__ = [
    "MAX_DELEGATIONS",
    "FoundTarget",
    "LabelStore",
    "RecordingFetcher",
    "TrustedRepository",
    "UnpublishedRoleError",
    "map_tuf_error",
    "prefetch_bins",
]
