"""``trustctl migrate``: a verified upgrade of a Notary repository to TUF 1.0.

1. **Verify the source** fully by Notary's client rules (its pin, or an explicit
   ``--tofu``): nothing that did not verify is carried.
2. **Plan** (pure, :func:`plan_migration`): every tag a lookup finds (digest, size,
   custom data as is) goes into the new repository's ``targets``, signed by the
   owner's targets key (a delegate's signature cannot be carried: the signed bytes
   change; the plan says who signed it in the source). Docker's signers
   (``targets/releases`` and the ``targets/<name>`` roles naming its keys) become
   trustctl signers with the same keys and threshold. What cannot be carried is
   listed with the reason: tags of roles that did not verify, tags outside their
   role's delegated paths, delegations restricted to some paths (a trustctl signer
   may sign any tag: carrying them would widen their rights), nested delegations.
3. **Keys**: the owner's root and targets keys are read from the Notary or Docker
   trust directory (passphrases as Notary and Docker take them) and imported; or
   new ones are made (``--new-keys``).
4. **Publish** on the TUF 1.0 server: create the repository (flat layout, server-held
   snapshot and timestamp), pin its root, then publish whatever the repository does
   not hold yet. Each step is skipped when already done, so a run that failed
   half-way can simply be run again.

Why one module of this size: verify, plan and write are three steps of one
command whose plan (pure) is what the tests read against the written repository;
splitting them would put the rules of what is carried in three places.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from securesystemslib.signer import SSlibKey

from trustctl.changes import Change
from trustctl.errors import (
    AlreadyInitializedError,
    MissingKeyError,
    UntrustedSignatureError,
    UsageError,
)
from trustctl.keyformat import scheme_for
from trustctl.layout import RELEASES, SIGNER_NAME_RE, signer_roles
from trustctl.notary.keyfiles import NotaryKeyFile, key_files_in, read_notary_keys
from trustctl.notary.model import NotaryKey, common_name, entry_hex
from trustctl.notary.updater import NotaryUpdater, ServerFetch, TrustedNotary, is_notary_root

if TYPE_CHECKING:
    from trustctl.context import TrustContext
    from trustctl.keys import KeyInfo
    from trustctl.transport import Transport

__all__ = ["MigrationPlan", "MigrationResult", "Source", "migrate", "plan_migration"]


@dataclass(frozen=True)
class CarriedTag:
    tag: str
    sha256: str
    length: int
    custom: Any
    source_role: str
    source_signers: tuple[str, ...]

    @property
    def digest(self) -> str:
        return f"sha256:{self.sha256}"


@dataclass(frozen=True)
class CarriedSigner:
    name: str
    keys: tuple[SSlibKey, ...]
    source_keyids: tuple[str, ...]


@dataclass(frozen=True)
class Skipped:
    what: str
    reason: str


@dataclass
class MigrationPlan:
    """What a migration carries, and what it leaves out (and why)."""

    source_gun: str
    dest_gun: str
    tags: list[CarriedTag] = field(default_factory=list)
    signers: list[CarriedSigner] = field(default_factory=list)
    threshold: int | None = None
    skipped: list[Skipped] = field(default_factory=list)
    root_cert_ids: tuple[str, ...] = ()
    source_root_version: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "source_gun": self.source_gun,
            "dest_gun": self.dest_gun,
            "source_root_version": self.source_root_version,
            "tags": [
                {
                    "tag": t.tag,
                    "digest": t.digest,
                    "length": t.length,
                    "custom": t.custom,
                    "source_role": t.source_role,
                    "source_signers": list(t.source_signers),
                }
                for t in self.tags
            ],
            "signers": [
                {
                    "name": s.name,
                    "keyids": [k.keyid for k in s.keys],
                    "source_keyids": list(s.source_keyids),
                }
                for s in self.signers
            ],
            "threshold": self.threshold,
            "skipped": [{"what": s.what, "reason": s.reason} for s in self.skipped],
        }

    def lines(self) -> list[str]:
        out = [
            f"Plan: {self.source_gun} (Notary, root v{self.source_root_version}) -> {self.dest_gun} (TUF 1.0)"
        ]
        for t in self.tags:
            by = (
                "owner"
                if t.source_role == "targets"
                else f"{', '.join(t.source_signers) or 'a signer'} in {t.source_role}"
            )
            out.append(
                f"  tag:      {t.tag} {t.digest} ({t.length} bytes; signed by {by} in the source)"
            )
        for s in self.signers:
            out.append(f"  signer:   {s.name} ({', '.join(k.keyid[:16] + '…' for k in s.keys)})")
        if self.threshold is not None:
            out.append(f"  signers:  a tag counts with {self.threshold} of their keys")
        for skip in self.skipped:
            out.append(f"  skipped:  {skip.what}: {skip.reason}")
        return out


def _tuf_key(key: NotaryKey) -> SSlibKey:
    public = key.public_key
    return SSlibKey.from_crypto(public, scheme=scheme_for(public))


def _signers_in_source(trusted: TrustedNotary, role: str) -> tuple[str, ...]:
    from trustctl.notary.model import signed_keyids
    from trustctl.notary.verify import signers_of

    if role == "targets":
        return ()
    return signers_of(
        trusted, role, signed_keyids(trusted.roles[role].file, trusted.role_keys(role))
    )


def plan_migration(trusted: TrustedNotary, dest_gun: str) -> MigrationPlan:
    """What to carry from a verified Notary repository (pure)."""
    plan = MigrationPlan(trusted.gun, dest_gun)
    plan.source_root_version = trusted.root.file.version
    plan.root_cert_ids = tuple(trusted.root.roles["root"].keyids)
    found = trusted.all_targets()
    for tag, (role, meta) in sorted(found.items()):
        sha = entry_hex(meta)
        assert sha is not None  # the wire format requires sha256
        plan.tags.append(
            CarriedTag(
                tag,
                sha,
                int(meta["length"]),
                meta.get("custom"),
                role,
                _signers_in_source(trusted, role),
            )
        )
    noted: set[str] = set(found)
    for role, info in sorted(trusted.unverified.items()):
        for tag in sorted(info.targets):
            if tag not in noted:
                noted.add(tag)
                plan.skipped.append(
                    Skipped(
                        f"tag {tag} ({role})",
                        f"{role} did not verify in the source: {trusted.failures[role]}",
                    )
                )
    for role, info in sorted(trusted.roles.items()):
        for tag in sorted(info.targets):
            if tag not in noted:
                noted.add(tag)
                plan.skipped.append(
                    Skipped(
                        f"tag {tag} ({role})",
                        f"outside the paths delegated to {role}, so no Notary client trusts it",
                    )
                )
    _plan_signers(trusted, plan)
    return plan


def _plan_signers(trusted: TrustedNotary, plan: MigrationPlan) -> None:
    top = trusted.targets
    names: dict[str, str] = {}  # Notary key id -> signer name
    carried_roles: list[str] = []
    for name, role in sorted(top.delegations.items()):
        if name == RELEASES:
            continue
        short = name.split("/", 1)[1]
        if role.paths != ("",):
            plan.skipped.append(
                Skipped(
                    f"delegation {name}",
                    f"restricted to paths {list(role.paths or ())}; a trustctl signer may sign any tag, so carrying it "
                    "would widen its rights (its tags are carried, signed by the owner)",
                )
            )
            continue
        if role.threshold != 1 or not SIGNER_NAME_RE.fullmatch(short):
            plan.skipped.append(
                Skipped(
                    f"delegation {name}",
                    f"threshold {role.threshold} or name {short!r} has no trustctl signer form",
                )
            )
            continue
        carried_roles.append(name)
        for keyid in role.keyids:
            names.setdefault(keyid, short)
    for name in sorted({r for r in trusted.roles} | set(trusted.unverified)):
        if name.count("/") > 1:
            plan.skipped.append(
                Skipped(
                    f"delegation {name}",
                    "nested delegations are not carried (their verified tags are)",
                )
            )
    keys_by_name: dict[str, dict[str, NotaryKey]] = {}
    releases = top.delegations.get(RELEASES)
    if releases is not None and releases.paths != ("",):
        plan.skipped.append(
            Skipped(
                f"delegation {RELEASES}",
                f"restricted to paths {list(releases.paths or ())}; trustctl's signers sign any tag (its tags are "
                "carried, signed by the owner)",
            )
        )
        releases = None
    if releases is not None:
        plan.threshold = releases.threshold
        for keyid in releases.keyids:
            key = top.keys[keyid]
            name = names.get(keyid) or _cn_name(key) or f"key-{keyid[:8]}"
            keys_by_name.setdefault(name, {})[keyid] = key
    for role_name in carried_roles:
        short = role_name.split("/", 1)[1]
        for keyid in top.delegations[role_name].keyids:
            keys_by_name.setdefault(short, {})[keyid] = top.keys[keyid]
    for name, keys in sorted(keys_by_name.items()):
        tuf_keys = tuple(
            sorted(
                {_tuf_key(k).keyid: _tuf_key(k) for k in keys.values()}.values(),
                key=lambda k: k.keyid,
            )
        )
        plan.signers.append(CarriedSigner(name, tuf_keys, tuple(sorted(keys))))


def _cn_name(key: NotaryKey) -> str | None:
    cn = (common_name(key) or "").lower()
    return cn if SIGNER_NAME_RE.fullmatch(cn) and cn != "releases" else None


# --- the owner's keys ---------------------------------------------------------------------


@dataclass(frozen=True)
class OwnerKeys:
    root: NotaryKeyFile
    targets: NotaryKeyFile


def default_notary_dir() -> Path:
    docker = Path.home() / ".docker" / "trust"
    return docker if (docker / "private").is_dir() else Path.home() / ".notary"


def find_owner_keys(trusted: TrustedNotary, directory: Path, tctx: TrustContext) -> OwnerKeys:
    """The source's current root and targets private keys from a Notary trust directory.

    Raises:
        MissingKeyError: a key is not there; WrongPassphraseError etc. from decryption.
    """
    from notary_server.notary.model import key_from_spki

    files = {p.stem: p for p in key_files_in(directory)} if directory.is_dir() else {}
    root_ids = []
    for cert_id in trusted.root.roles["root"].keyids:
        key = trusted.root.keys[cert_id]
        root_ids.append(key_from_spki(key.spki).keyid)  # Notary names the file by the bare key's id
    targets_ids = list(trusted.root.roles["targets"].keyids)
    chosen: dict[str, Path] = {}
    for role, ids in (("root", root_ids), ("targets", targets_ids)):
        path = next((files[i] for i in ids if i in files), None)
        if path is None:
            raise MissingKeyError(
                f"the {role} key of {trusted.gun} (Notary key id {ids[0][:16]}…) is not in {directory}",
                hint="pass --notary-trust-dir DIR (the owner's ~/.docker/trust or ~/.notary), or --new-keys "
                "for new owner keys",
            )
        chosen[role] = path
    from trustctl.notary.keyimport import _prompt

    keys, _ = read_notary_keys(
        [chosen["root"], chosen["targets"]],
        tctx.environ,
        prompt=_prompt(tctx),
        passphrase=tctx.environ.get("TRUSTCTL_IMPORT_PASSPHRASE") or None,
    )
    by_path = {k.path: k for k in keys}
    return OwnerKeys(by_path[chosen["root"]], by_path[chosen["targets"]])


# --- running it -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Where the Notary repository is served."""

    server: str
    transport: Transport


@dataclass
class MigrationResult:
    plan: MigrationPlan
    dry_run: bool
    created: bool = False
    root_keyid: str | None = None
    targets_keyid: str | None = None
    published: dict[str, int] = field(default_factory=dict)
    already: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.plan.to_dict(),
            "dry_run": self.dry_run,
            "created": self.created,
            "root_keyid": self.root_keyid,
            "targets_keyid": self.targets_keyid,
            "published": self.published,
            "already_done": self.already,
        }


def verify_source(tctx: TrustContext, gun: str, source: Source, *, tofu: bool) -> TrustedNotary:
    """Verify the Notary repository ``gun`` at ``source`` (its pin, or ``--tofu``)."""
    from trustctl.notary.pinning import NotaryPin
    from trustctl.notary.verify import notary_state

    fetch = ServerFetch(source.transport, source.server, gun)
    state = notary_state(tctx.trust, gun)
    if state.pin() is None:
        if not is_notary_root(fetch("root.json", 10 * 1024 * 1024)):
            raise UsageError(
                f"{gun} at {source.server} is not a Notary repository",
                hint="check SOURCE_GUN and --from",
            )
        if not tofu:
            raise UntrustedSignatureError(
                f"no root certificate is pinned for the Notary repository {gun}, so it cannot be verified",
                hint=f"pin it first (`trustctl --server {source.server} trust pin {gun} --keyid CERT_ID`), or "
                "pass --tofu to trust what the server sends",
            )
        state.set_pin(NotaryPin.tofu())
        tctx.printer.warn(
            f"trusting on first use: the root certificates {source.server} sent for {gun}"
        )
    return NotaryUpdater(gun, fetch, state, tctx.clock()).refresh()


def migrate(
    tctx: TrustContext,
    source_gun: str,
    dest_gun: str,
    source: Source,
    *,
    notary_dir: Path | None,
    new_keys: bool,
    dry_run: bool,
    tofu: bool,
) -> MigrationResult:
    """Run the migration (see module docstring).

    Raises:
        UsageError: the source and destination are the same repository on one server.
        TrustctlError: verification, keys, network or server errors (re-run to resume).
    """
    if source_gun == dest_gun and source.server.rstrip("/") == tctx.server:
        raise UsageError(
            f"{source_gun} is the Notary repository itself on {tctx.server}: a repository keeps its dialect",
            hint="migrate to another server (--from the Notary server, --server ours), or name a new DEST_GUN",
        )
    with tctx.trust.lock(source_gun):
        trusted = verify_source(tctx, source_gun, source, tofu=tofu)
    plan = plan_migration(trusted, dest_gun)
    result = MigrationResult(plan, dry_run)
    owner = None if new_keys else find_owner_keys(trusted, notary_dir or default_notary_dir(), tctx)
    if dry_run:
        return result
    with tctx.trust.lock(dest_gun):
        root_info, targets_info = _owner_key_infos(tctx, dest_gun, owner)
        result.root_keyid, result.targets_keyid = root_info.keyid, targets_info.keyid
        result.created = _ensure_repository(
            tctx, dest_gun, source_gun, root_info, targets_info, result
        )
        changes = _pending_changes(tctx, dest_gun, plan, result)
        if changes:
            published = tctx.publisher(dest_gun).publish(changes)
            result.published = dict(published.published)
            for warning in published.warnings:
                tctx.printer.warn(warning)
    return result


def _owner_key_infos(
    tctx: TrustContext, dest_gun: str, owner: OwnerKeys | None
) -> tuple[KeyInfo, KeyInfo]:
    if owner is None:
        pinned = tctx.trust.pinned(dest_gun)
        if pinned is not None:  # a re-run: the keys made by the first run
            held = tctx.keystore.held(pinned.keyids)
            if held:
                repo = tctx.open_trusted(dest_gun)
                held_targets = tctx.keystore.held(repo.root.signed.roles["targets"].keyids)
                if held_targets:
                    return held[0], held_targets[0]
        root = tctx.keystore.generate("root", gun=dest_gun)
        return root, tctx.keystore.generate("targets", gun=dest_gun)
    root, _ = tctx.keystore.add_private(owner.root.private, role="root", gun=None, name=None)  # type: ignore[arg-type]
    targets, _ = tctx.keystore.add_private(
        owner.targets.private,  # type: ignore[arg-type]
        role="targets",
        gun=dest_gun,
        name=None,
    )
    return root, targets


def _ensure_repository(
    tctx: TrustContext,
    dest_gun: str,
    source_gun: str,
    root_info: KeyInfo,
    targets_info: KeyInfo,
    result: MigrationResult,
) -> bool:
    """Create ``dest_gun`` (flat layout) and pin it; or adopt it when it is this
    migration's (a re-run); or refuse when it is someone else's."""
    from trustctl.admin import initialize

    pinned = tctx.trust.pinned(dest_gun)
    if pinned is None:
        existing = tctx.client.get_file(dest_gun, "1.root.json")
        if existing is not None:
            from trustctl.rootchain import parse_root

            md = parse_root(existing, what=f"the server's root of {dest_gun}")
            check = md.signed.get_verification_result("root", md.signed_bytes, md.signatures)
            if root_info.keyid not in check.signed:
                raise AlreadyInitializedError(
                    f"{dest_gun} already exists on {tctx.server} and is not signed by this migration's root key",
                    hint="name another DEST_GUN, or delete it first (`trustctl delete --remote`)",
                )
            tctx.trust.pin(dest_gun, existing, source=f"trustctl migrate from {source_gun}")
            result.already.append("repository created")
            return False
        initialize(
            dest_gun,
            client=tctx.client,
            keystore=tctx.keystore,
            trust=tctx.trust,
            root_keyid=root_info.keyid,
            targets_keyid=targets_info.keyid,
            clock=tctx.clock,
            hash_bins=0,
            pin_source=f"trustctl migrate from {source_gun}",
        )
        return True
    if root_info.keyid not in pinned.keyids:
        raise AlreadyInitializedError(
            f"{dest_gun} is pinned here with other root keys than this migration's",
            hint="name another DEST_GUN, or unpin it (`trustctl trust unpin`) if that is wrong",
        )
    result.already.append("repository created")
    return False


def _change(action: str, **data: Any) -> Change:
    return Change(f"migrate-{uuid.uuid4().hex[:12]}", action, data)


def _pending_changes(
    tctx: TrustContext, dest_gun: str, plan: MigrationPlan, result: MigrationResult
) -> list[Change]:
    """The changes the destination does not hold yet."""
    repo = tctx.open_trusted(dest_gun)
    repo.refresh()
    targets = repo.targets.signed
    have_signers = signer_roles(targets)
    changes: list[Change] = []
    for signer in plan.signers:
        wanted = sorted(k.keyid for k in signer.keys)
        if sorted(have_signers.get(signer.name, [])) == wanted:
            result.already.append(f"signer {signer.name}")
            continue
        changes.append(
            _change(
                "add-signer",
                name=signer.name,
                keys=[{"keyid": k.keyid, **k.to_dict()} for k in signer.keys],
                threshold=None,
            )
        )
    releases = (targets.delegations.roles or {}).get(RELEASES) if targets.delegations else None
    if plan.threshold is not None and plan.signers:
        if releases is not None and releases.threshold == plan.threshold:
            result.already.append(f"threshold {plan.threshold}")
        else:
            changes.append(_change("set-threshold", threshold=plan.threshold))
    for tag in plan.tags:
        have = targets.targets.get(tag.tag)
        if (
            have is not None
            and have.hashes.get("sha256") == tag.sha256
            and have.length == tag.length
        ):
            result.already.append(f"tag {tag.tag}")
            continue
        data: dict[str, Any] = {
            "tag": tag.tag,
            "sha256": tag.sha256,
            "length": tag.length,
            "media_type": None,
            "role": "targets",
        }
        data["custom"] = tag.custom if tag.custom is not None else {}
        changes.append(_change("add-target", **data))
    return changes
