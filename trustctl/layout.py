"""Where a tag lives: flat roles or hash bins, read from the delegations themselves.

A repository made by ``trustctl init`` (``--hash-bins 256``, the default) keeps its
tags in *hash bins*: small targets roles, each holding the tags whose SHA-256 starts
with the bin's bits. Signing or verifying a tag then reads and signs one bin, never
data proportional to the number of tags. Two shapes exist, both understood by
python-tuf's ngclient:

* **owner bins, succinct** (new repositories): ``targets`` delegates TAP 15 succinct
  roles ``bins-00`` ... ``bins-ff`` to the owner's *bins key* (a key made by
  ``init`` next to the targets key, so CI can hold it without the targets key, and
  rotating the targets key does not re-sign every bin).
* **with signers**: TAP 15 succinct roles are terminating (a TUF client stops
  looking after the first bin set it enters) and a role delegates either succinct
  bins *or* named roles, never both. So when the first signer is added, the owner's
  bins become ordinary named roles with ``path_hash_prefixes`` (the same names, the
  same keys: already signed bins stay valid; missing ones are created empty because
  a TUF client must find every bin it visits in the snapshot), listed before
  ``targets/releases``. ``targets/releases`` becomes a small role signed with the
  targets key that delegates succinct bins ``targets/releases/bins-00`` ... to the
  signers' keys with the k-of-n threshold. Its name prefix carries the
  ``targets/releases/`` path so the trust server finds the delegator by name.

**Who holds which tags.** ``targets/releases`` delegates the tags matching its
``paths`` (``*`` unless the owner chose patterns, e.g. ``v1.*``) and is listed
*before* the owner's bins, terminating: for those tags a TUF client looks only at the
signers' bins, so the bins key (a single key, often CI's) can neither override nor
shadow a tag the signers hold; other tags fall through to the owner's bins.
Repositories that got their first signer from an older trustctl list the owner's bins
first (the bins key wins) until the owner sets the signers' paths
(:class:`TagPolicy` tells them apart).

A lookup of a tag reads ``targets``, ``targets/releases`` and one signer bin for the
signers' tags, else one owner bin. A repository made with ``--hash-bins 0`` (or by older trustctl)
keeps the flat layout: tags directly in ``targets`` and ``targets/releases``.

Everything here is pure: functions of verified metadata, no I/O.

Example:
    >>> from tuf.api.metadata import Targets
    >>> t = Targets()
    >>> t.delegations = owner_bins_delegations(["k" * 64], [], 8)  # doctest: +SKIP
    >>> owner_bin_for(t, "v1.2")  # doctest: +SKIP
    'bins-3f'
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from trustctl.errors import UsageError

if TYPE_CHECKING:  # python-tuf is imported where metadata is built: --help needs none
    from securesystemslib.signer import Key
    from tuf.api.metadata import DelegatedRole, Delegations, SuccinctRoles, Targets

__all__ = [
    "DEFAULT_HASH_BINS",
    "MAX_HASH_BINS",
    "OWNER_BINS_PREFIX",
    "RELEASES",
    "RELEASES_BINS_PREFIX",
    "BinSet",
    "TagPolicy",
    "bit_length_for",
    "check_signer_name",
    "delegates",
    "hash_prefixes",
    "is_bin_role",
    "named_owner_bins",
    "owner_bin_for",
    "owner_bins",
    "owner_bins_delegations",
    "parent_candidates",
    "releases_bins",
    "signer_roles",
    "succinct_to_named",
    "tag_policy",
]

RELEASES = "targets/releases"
OWNER_BINS_PREFIX = "bins"
RELEASES_BINS_PREFIX = f"{RELEASES}/bins"
# 256 bins: at 100,000 tags a bin is ~60 kB and the snapshot ~30 kB (see docs/cli.md).
DEFAULT_HASH_BINS = 256
# Converting owner bins to named roles uploads every bin at once: the trust server
# takes at most 1,024 files per upload and 1,024 delegations per role.
MAX_HASH_BINS = 512

SIGNER_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def check_signer_name(name: str) -> str:
    """A signer name: ``[a-z0-9][a-z0-9_-]*``, not ``releases``.

    Raises:
        UsageError: invalid or reserved.
    """
    if not SIGNER_NAME_RE.fullmatch(name) or name == "releases":
        raise UsageError(
            f"invalid signer name {name!r}: use lowercase letters, digits, '_' and '-' ('releases' is reserved)"
        )
    return name


def signer_roles(targets: Targets) -> dict[str, list[str]]:
    """Signer name -> key ids, from the ``targets/<name>`` delegations."""
    roles = targets.delegations.roles if targets.delegations is not None else None
    out: dict[str, list[str]] = {}
    for role_name, role in (roles or {}).items():
        if role_name.startswith("targets/") and role_name != RELEASES and role_name.count("/") == 1:
            out[role_name.split("/", 1)[1]] = list(role.keyids)
    return out


_OWNER_BIN_RE = re.compile(r"^bins-[0-9a-f]{1,8}$")
_BIN_SUFFIX_RE = re.compile(r"-[0-9a-f]{1,8}$")


def bit_length_for(bins: int) -> int:
    """The succinct ``bit_length`` for ``bins`` bins (a power of two, 2..MAX); 0 means flat.

    Raises:
        UsageError: not 0 and not a power of two in range.
    """
    if bins == 0:
        return 0
    if bins < 2 or bins > MAX_HASH_BINS or bins & (bins - 1):
        raise UsageError(
            f"--hash-bins {bins}: use a power of two from 2 to {MAX_HASH_BINS}, or 0 for the flat layout"
        )
    return bins.bit_length() - 1


def hash_prefixes(bin_number: int, bit_length: int) -> list[str]:
    """The hex SHA-256 prefixes that make up succinct bin ``bin_number``.

    A succinct bin takes the first ``bit_length`` bits of the hash; a path-hash
    prefix is a whole number of hex digits, so a bin is one or several prefixes.
    """
    digits = -(-bit_length // 4)
    shift = 4 * digits - bit_length
    return [f"{n:0{digits}x}" for n in range(bin_number << shift, (bin_number + 1) << shift)]


@dataclass(frozen=True)
class BinSet:
    """A set of hash bins delegated by ``parent``: names, keys and threshold."""

    parent: str
    prefix: str
    bit_length: int
    keyids: tuple[str, ...]
    threshold: int
    succinct: bool

    def bin_for(self, path: str) -> str:
        return _succinct(self.prefix, self.bit_length).get_role_for_target(path)

    def names(self) -> list[str]:
        return list(_succinct(self.prefix, self.bit_length).get_roles())

    def holds(self, role: str) -> bool:
        return _succinct(self.prefix, self.bit_length).is_delegated_role(role)

    @property
    def count(self) -> int:
        return 2**self.bit_length


@lru_cache(maxsize=16)
def _succinct(prefix: str, bit_length: int) -> SuccinctRoles:
    from tuf.api.metadata import SuccinctRoles

    return SuccinctRoles([], 1, bit_length, prefix)


def owner_bins_delegations(
    bins_keys: Sequence[Key], extra_keys: Iterable[Key], bit_length: int
) -> Delegations:
    """``targets``' delegations for a new binned repository: succinct owner bins."""
    from tuf.api.metadata import Delegations, SuccinctRoles

    keys = {k.keyid: k for k in [*bins_keys, *extra_keys]}
    succinct = SuccinctRoles([k.keyid for k in bins_keys], 1, bit_length, OWNER_BINS_PREFIX)
    return Delegations(keys=keys, succinct_roles=succinct)


def named_owner_bins(targets: Targets) -> list[DelegatedRole]:
    """Owner bins delegated as named ``path_hash_prefixes`` roles (after signers came)."""
    d = targets.delegations
    if d is None or d.roles is None:
        return []
    return [
        r
        for r in d.roles.values()
        if r.path_hash_prefixes is not None and _OWNER_BIN_RE.match(r.name)
    ]


def owner_bins(targets: Targets) -> BinSet | None:
    """The owner's bin set in ``targets`` (succinct or named), or None (flat)."""
    d = targets.delegations
    if d is None:
        return None
    if d.succinct_roles is not None:
        s = d.succinct_roles
        return BinSet(
            "targets", s.name_prefix, s.bit_length, tuple(s.keyids), s.threshold, succinct=True
        )
    named = named_owner_bins(targets)
    if not named:
        return None
    count = len(named)
    bit_length = count.bit_length() - 1
    if count & (count - 1) or bit_length < 1:
        return None  # not a bin set trustctl made
    first = named[0]
    return BinSet(
        "targets",
        OWNER_BINS_PREFIX,
        bit_length,
        tuple(first.keyids),
        first.threshold,
        succinct=False,
    )


def owner_bin_for(targets: Targets, path: str) -> str | None:
    """The owner bin that carries ``path``, or None when ``targets`` has no bins."""
    bins = owner_bins(targets)
    if bins is None:
        return None
    name = bins.bin_for(path)
    if not bins.succinct:
        d = targets.delegations
        assert d is not None and d.roles is not None
        role = d.roles.get(name)
        if role is None or not role.is_delegated_path(path):
            return None
    return name


def releases_bins(releases: Targets | None) -> BinSet | None:
    """The signers' bin set delegated by ``targets/releases``, or None (flat)."""
    if releases is None or releases.delegations is None:
        return None
    s = releases.delegations.succinct_roles
    if s is None:
        return None
    return BinSet(RELEASES, s.name_prefix, s.bit_length, tuple(s.keyids), s.threshold, True)


def succinct_to_named(targets: Targets) -> list[str]:
    """Turn ``targets``' succinct owner bins into named ``path_hash_prefixes`` roles.

    Same names, keys and threshold, so every bin signed so far stays valid; the roles
    are not terminating, so a lookup goes on to ``targets/releases``. Returns the bin
    names. Other delegations can then be added after them.
    """
    from tuf.api.metadata import DelegatedRole, Delegations

    d = targets.delegations
    assert d is not None and d.succinct_roles is not None
    s = d.succinct_roles
    roles: dict[str, DelegatedRole] = {}
    for number, name in enumerate(s.get_roles()):
        roles[name] = DelegatedRole(
            name,
            list(s.keyids),
            s.threshold,
            False,
            path_hash_prefixes=hash_prefixes(number, s.bit_length),
        )
    targets.delegations = Delegations(keys=dict(d.keys), roles=roles)
    return list(roles)


@dataclass(frozen=True)
class TagPolicy:
    """Which tags the signers hold, as ``targets`` delegates them (see module docstring).

    ``signer_paths``: ``targets/releases``' path patterns; ``signers_first``: a lookup
    reaches ``targets/releases`` before any owner bin (False in a flat repository,
    where the owner's tags are in ``targets`` itself, which a lookup reads first);
    ``terminating``: a lookup of a signers' tag ends in ``targets/releases``.
    """

    signer_paths: tuple[str, ...]
    signers_first: bool
    terminating: bool

    def holds(self, tag: str) -> bool:
        """Whether ``tag`` is one of the signers' tags (python-tuf's path matching)."""
        from tuf.api.metadata import DelegatedRole

        return DelegatedRole(
            RELEASES, [], 1, False, paths=list(self.signer_paths)
        ).is_delegated_path(tag)

    def to_dict(self) -> dict[str, object]:
        return {
            "signer_paths": list(self.signer_paths),
            "signers_first": self.signers_first,
            "terminating": self.terminating,
        }


def tag_policy(targets: Targets) -> TagPolicy | None:
    """The signers' tags in ``targets``' delegations, or None without signers."""
    d = targets.delegations
    roles = d.roles if d is not None else None
    releases = (roles or {}).get(RELEASES)
    if roles is None or releases is None:
        return None
    names = list(roles)
    bins = [i for i, name in enumerate(names) if _OWNER_BIN_RE.match(name)]
    first = bool(bins) and names.index(RELEASES) < bins[0]
    return TagPolicy(tuple(releases.paths or ()), first, releases.terminating)


def is_bin_role(role: str) -> bool:
    """A name trustctl gives to hash bins (``bins-0a``, ``targets/releases/bins-0a``)."""
    last = role.rsplit("/", 1)[-1]
    return last.startswith(f"{OWNER_BINS_PREFIX}-") and bool(_BIN_SUFFIX_RE.search(last))


def parent_candidates(role: str) -> list[str]:
    """Who may delegate ``role``, by name (the trust server's rule).

    ``targets`` delegates top-level names and ``targets/x``; ``a/b/c`` is delegated by
    ``a/b``.
    """
    out = ["targets"]
    if "/" in role:
        parent = role.rsplit("/", 1)[0]
        if parent != "targets":
            out.append(parent)
    return out


def path_hash(path: str) -> str:
    return hashlib.sha256(path.encode("utf-8")).hexdigest()


def delegates(parent: Targets, role: str) -> bool:
    """Whether ``parent`` delegates to ``role`` (by name, or as one of its hash bins)."""
    d = parent.delegations
    if d is None:
        return False
    if d.roles is not None:
        return role in d.roles
    return d.succinct_roles is not None and d.succinct_roles.is_delegated_role(role)
