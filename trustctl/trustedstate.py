"""The one rule for a repository's trusted state on disk: once verified, it must read back.

Rollback and freeze protection rest on the state a client verified last: the
timestamp and snapshot python-tuf keeps (``<trust dir>/tuf/<gun>/metadata``, with
the root chain in ``root_history/``), or the highest version of every role of a
Notary repository (``notary/root.json`` and ``notary/state.json``). python-tuf reads
an unreadable local timestamp or snapshot as absent, and Notary's workflow reads
unreadable versions as none: both start over from the pin, and would take older
metadata an attacker replays. So trustctl never starts over by itself:

* at the end of the first successful verification after a pin, a marker
  (``trusted_state.json``, next to the pin) records that the repository was verified
  from that pin (the SHA-256 of the pin as stored) and, for TUF 1.0, the root,
  timestamp and snapshot versions the last verification ended on;
* before any verification, a repository verified before from the same pin (the
  marker, or for trust dirs without one, a snapshot, targets or Notary state already
  there) must have its state whole: every file present and parsable. Anything else
  is :class:`~trustctl.errors.StateCorruptError` (``STATE_CORRUPT``), until the
  repository is pinned again (``trustctl trust pin``), which drops the state and the
  marker so the next verification starts over, on purpose;
* for TUF 1.0, after python-tuf's refresh and before any answer, it must not have
  ended on an older root than the marker's, nor, from the same root, on an older
  timestamp or snapshot: python-tuf also drops a local file that parses but whose
  signature fails, and trusts an older validly signed copy put back in its place.

A fresh pin has no marker and no state: its first verification runs as always; one
that fails before the end writes no marker. The CLI, the library
(:class:`trustctl.api.Verifier`, on every refresh from disk) and the deploy gate
(:mod:`trustctl.gate.state`) all ask :func:`tuf_problem` / :func:`notary_problem`.
Only the files the rollback checks rest on are read (not the targets roles: python-tuf
downloads an unreadable one again and checks it against the trusted snapshot).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from trustctl.atomicfile import write_atomic
from trustctl.errors import StateCorruptError, TrustctlError

__all__ = [
    "MARKER",
    "TufState",
    "clear_marker",
    "notary_problem",
    "record_verified",
    "refuse",
    "tuf_problem",
]

MARKER = "trusted_state.json"
#: Files whose presence means a verified timestamp was persisted before them.
_AFTER_TIMESTAMP = ("snapshot.json", "targets.json")


def _digest(pin: bytes) -> str:
    return hashlib.sha256(pin).hexdigest()


def _marker(directory: Path, pin: bytes) -> tuple[dict[str, object] | None, str | None]:
    """(the marker, if it is this pin's; a problem reading it)."""
    try:
        doc = json.loads((directory / MARKER).read_bytes())
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as e:
        return None, f"{MARKER} is unreadable ({type(e).__name__})"
    if not isinstance(doc, dict) or not isinstance(doc.get("pin_sha256"), str):
        return None, f"{MARKER} is unreadable (no pin_sha256)"
    return (doc if doc["pin_sha256"] == _digest(pin) else None), None


def record_verified(directory: Path, pin: bytes, **versions: int) -> None:
    """After a successful verification from ``pin``: mark ``directory`` (where the pin
    is) as verified, with the versions it ended on (written when they change)."""
    doc: dict[str, object] = {"pin_sha256": _digest(pin)}
    doc.update({f"{role}_version": version for role, version in versions.items()})
    data = json.dumps(doc, sort_keys=True).encode()
    with contextlib.suppress(FileNotFoundError):
        if (directory / MARKER).read_bytes() == data:
            return
    write_atomic(directory / MARKER, data)


def clear_marker(directory: Path) -> None:
    """Forget that ``directory``'s repository was verified (it is pinned again)."""
    with contextlib.suppress(FileNotFoundError):
        (directory / MARKER).unlink()


def _parses(path: Path, role: str) -> str | None:
    from tuf.api.exceptions import RepositoryError
    from tuf.api.metadata import Metadata

    try:
        md = Metadata.from_bytes(path.read_bytes())
    except (OSError, RepositoryError, ValueError) as e:
        return f"{path.name} is unreadable ({type(e).__name__})"
    if md.signed.type != role:
        return f"{path.name} holds {md.signed.type} metadata, not {role}"
    return None


def tuf_problem(gun_dir: Path, metadata_dir: Path, pin: bytes | None) -> str | None:
    """What is wrong with a TUF 1.0 repository's trusted state (None: whole, or none
    yet). ``gun_dir`` holds the pin and the marker; ``pin`` is the pinned root as stored."""
    marker, problem = _marker(gun_dir, pin) if pin is not None else (None, None)
    if problem:
        return problem
    present = {
        name for name in ("timestamp.json", *_AFTER_TIMESTAMP) if (metadata_dir / name).exists()
    }
    verified_before = marker is not None or bool(present & set(_AFTER_TIMESTAMP))
    if verified_before:
        for name in ("timestamp.json", "snapshot.json"):
            if name not in present:
                return f"{name} is missing from the trusted metadata"
    for name in ("timestamp.json", "snapshot.json"):
        if name in present and (problem := _parses(metadata_dir / name, name[:-5])):
            return problem
    newest = marker.get("root_version") if marker is not None else None
    history = metadata_dir / "root_history"
    if isinstance(newest, int) and pin is not None:
        first = _version(pin) + 1
        for version in range(first, newest + 1):
            if not (history / f"{version}.root.json").exists():
                return f"root_history/{version}.root.json (a root it rotated to) is missing"
    for path in sorted(history.glob("*.root.json")) if history.is_dir() else ():
        if problem := _parses(path, "root"):
            return f"root_history/{problem}"
    return None


def _version(root: bytes) -> int:
    try:
        version = json.loads(root)["signed"]["version"]
    except (ValueError, KeyError, TypeError):
        return 1
    return version if isinstance(version, int) else 1


def notary_problem(directory: Path, pin: bytes | None) -> str | None:
    """What is wrong with a Notary repository's persisted state in ``directory``
    (``notary/`` next to its pin; None: whole, or none yet)."""
    from trustctl.notary.model import parse_root

    marker, problem = _marker(directory, pin) if pin is not None else (None, None)
    if problem:
        return f"notary/{problem}"
    root, versions = directory / "root.json", directory / "state.json"
    if marker is None and not root.exists() and not versions.exists():
        return None  # never verified from this pin
    for path in (root, versions):
        if not path.exists():
            return f"notary/{path.name} (verified before) is missing"
    try:
        parse_root(root.read_bytes())
    except (OSError, TrustctlError) as e:
        return f"notary/root.json is unreadable ({type(e).__name__})"
    try:
        doc = json.loads(versions.read_bytes())
    except (OSError, ValueError) as e:
        return f"notary/state.json is unreadable ({type(e).__name__})"
    table = doc.get("versions") if isinstance(doc, dict) else None
    if not isinstance(table, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in table.values()
    ):
        return "notary/state.json holds no table of role versions"
    return None


def refuse(gun: str, problem: str, *, notary: bool, refused: str = "") -> StateCorruptError:
    """The error for a damaged state: says it may be a rollback attack, and how to start
    over; ``refused`` says what stops meanwhile (the gate: its allows)."""
    how = (
        f"`trustctl trust pin {gun} --keyid CERT_ID` (or --ca-bundle FILE)"
        if notary
        else f"`trustctl trust pin {gun} ROOT_FILE` (the root.json you pinned, or --keyid ID)"
    )
    return StateCorruptError(
        f"the trusted state of {gun} in the trust dir is damaged: {problem}; it was verified "
        "before, and taken as nothing trusted yet it would accept older metadata again: this "
        f"may be a rollback attack{'; ' + refused if refused else ''}",
        hint=f"check the trust dir, then start over from the pin: {how}",
        problem=problem,
    )


@dataclass(frozen=True)
class TufState:
    """The guard on one TUF 1.0 repository's trusted state, used by
    :class:`~trustctl.tufview.TrustedRepository` around python-tuf's refresh."""

    gun: str
    gun_dir: Path  # the pin and the marker
    metadata_dir: Path  # python-tuf's cache

    def check(self, pin: bytes) -> None:
        """Before python-tuf reads the state.

        Raises:
            StateCorruptError: verified before from ``pin``, and the state does not read back.
        """
        problem = tuf_problem(self.gun_dir, self.metadata_dir, pin)
        if problem:
            raise refuse(self.gun, problem, notary=False)

    def verified(self, pin: bytes, root: int, timestamp: int, snapshot: int) -> None:
        """After python-tuf's refresh from ``pin`` succeeded, before anything is answered
        from it: it must not have ended older than what was verified before from the
        same root (python-tuf drops a local file whose signature fails, and trusts an
        older validly signed copy put back in its place). Then the versions are kept.

        Raises:
            StateCorruptError: it ended on an older root, or, from the same root, on an
                older timestamp or snapshot (a new root may reset them: fast-forward
                recovery after a key rotation).
        """
        try:
            if (self.gun_dir / "pinned_root.json").read_bytes() != pin:
                return  # re-pinned meanwhile: that pin's first verification marks it
        except FileNotFoundError:
            return
        marker, _ = _marker(self.gun_dir, pin)
        before = {k: v for k, v in (marker or {}).items() if isinstance(v, int)}
        now = {"root_version": root, "timestamp_version": timestamp, "snapshot_version": snapshot}
        older = [k for k in now if now[k] < before.get(k, 0)]
        if older and ("root_version" in older or root == before.get("root_version")):
            ended = ", ".join(k.split("_")[0] for k in older)
            problem = (
                f"the refresh ended on an older {ended} than it was verified with before "
                f"({', '.join(f'v{now[k]} < v{before[k]}' for k in older)}): the trusted files "
                "did not hold (damaged, or older copies put back)"
            )
            raise refuse(
                self.gun,
                problem,
                notary=False,
            )
        record_verified(self.gun_dir, pin, root=root, timestamp=timestamp, snapshot=snapshot)
