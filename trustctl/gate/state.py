"""The gate's guard on the trusted state it restarts from.

The trusted metadata of every repository lives in the trust dir (python-tuf persists
each file atomically after verifying it); a restarted gate continues from it, so an
older timestamp or snapshot replayed after ``kill -9`` is refused as a rollback.

That only holds if the state is there. python-tuf treats an unreadable local
timestamp or snapshot as absent and starts over from the root, and Notary's workflow
reads unreadable versions as none: either would let a replay through. So before a
repository is first used by this process, its trusted state must read back by the rule
every trustctl client follows (:mod:`trustctl.trustedstate`): a repository verified
before with a missing or unparsable ``timestamp.json``, ``snapshot.json`` or root of
its chain (``notary/root.json`` or ``notary/state.json`` for a Notary repository)
stops every allow for that repository until an operator re-initialises it
(``trustctl trust pin GUN root.json``, or ``--keyid ID``, drops the state). The
gate's Verifier applies the same rule again on every refresh from disk.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from trustctl.errors import StateCorruptError, TrustError
from trustctl.notary.pinning import NotaryPin
from trustctl.notary.verify import notary_state
from trustctl.trustedstate import notary_problem, refuse, tuf_problem
from trustctl.truststore import TrustStore

if TYPE_CHECKING:
    from trustctl.gate.bundle import BundleStore

__all__ = ["RootMismatchError", "RootPins", "StateCorruptError", "StateGuard", "offline_check"]


class RootMismatchError(TrustError):
    code = "ROOT_MISMATCH"


class RootPins:
    """A policy rule's root: pinned in the trust dir on first use, as ``trustctl trust
    pin`` pins it (a TUF 1.0 root.json; or a Notary repository's root certificate ids
    or CA); a different pin already there is refused, never silently replaced
    (re-pinning drops the trusted state, and with it rollback protection)."""

    def __init__(self, trust_dir: Path) -> None:
        self._store = TrustStore(trust_dir)
        self._lock = threading.Lock()
        self._done: set[tuple[str, bytes | NotaryPin]] = set()

    def ensure(self, gun: str, root: bytes | NotaryPin, source: str) -> None:
        """Raises:
        RootMismatchError: another root (or another dialect's pin) is pinned for ``gun``.
        """
        with self._lock:
            if (gun, root) in self._done:
                return
            if isinstance(root, NotaryPin):
                self._ensure_notary(gun, root, source)
            else:
                self._ensure_tuf(gun, root, source)
            self._done.add((gun, root))

    def _ensure_tuf(self, gun: str, root: bytes, source: str) -> None:
        pinned = self._store.pinned(gun)
        if pinned is None:
            if notary_state(self._store, gun).pin() is not None:
                raise self._mismatch(gun, "a Notary repository's root certificates", source)
            self._store.pin(gun, root, source=f"gate policy ({source})")
        elif pinned.data != root:
            raise self._mismatch(gun, f"another root (v{pinned.version})", source)

    def _ensure_notary(self, gun: str, pin: NotaryPin, source: str) -> None:
        if self._store.pinned(gun) is not None:
            raise self._mismatch(gun, "a TUF 1.0 root", source)
        state = notary_state(self._store, gun)
        current = state.pin()
        if current is None:
            state.set_pin(replace(pin, source=f"gate policy ({source})"))
        elif _anchors(current) != _anchors(pin):
            raise self._mismatch(gun, f"another root ({current.describe()})", source)

    @staticmethod
    def _mismatch(gun: str, what: str, source: str) -> RootMismatchError:
        return RootMismatchError(
            f"the trust dir pins {what} for {gun}, not the policy's {source}: it may be an "
            "attack, or the policy is out of date",
            hint=f"check both; after `trustctl trust unpin {gun}` the gate pins the policy's root "
            "on the next request (the trusted state is dropped)",
        )


def _anchors(pin: NotaryPin) -> tuple[str, frozenset[str], bytes]:
    """What a Notary pin trusts (not when or from where it was pinned)."""
    return (pin.mode, frozenset(pin.cert_ids), pin.ca_pem)


class StateGuard:
    """Checks each repository's persisted trusted state once per process, by the rule
    every client follows (:mod:`trustctl.trustedstate`; the Verifier checks again on
    every refresh from disk)."""

    def __init__(self, trust_dir: Path) -> None:
        self._store = TrustStore(trust_dir)
        self._good: set[str] = set()
        self._lock = threading.Lock()

    def check(self, gun: str) -> None:
        """Raise unless ``gun``'s trusted state on disk is whole (or absent).

        Raises:
            StateCorruptError: verified before, and a file is missing or unreadable.
        """
        with self._lock:
            if gun in self._good:
                return
        notary = notary_state(self._store, gun)
        problem = notary_problem(notary.directory, notary.pin_bytes())
        if not problem:
            gun_dir = self._store.gun_dir(gun)
            problem = tuf_problem(gun_dir, gun_dir / "metadata", self._store.pinned_bytes(gun))
        if problem:
            raise refuse(
                gun,
                problem,
                notary=notary.pin_bytes() is not None and self._store.pinned_bytes(gun) is None,
                refused="allows stop until an operator re-initialises it",
            )
        with self._lock:
            self._good.add(gun)


def offline_check(
    guard: StateGuard, bundle: BundleStore | None, clock: Callable[[], datetime]
) -> Callable[[str], None]:
    """The gate's check before each verification: the state guard, and in offline
    mode the bundle in force must be fresh by ``clock``."""

    def check(gun: str) -> None:
        guard.check(gun)
        if bundle is not None:
            bundle.check_fresh(clock())

    return check
