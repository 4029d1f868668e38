"""The user-facing client commands the benchmark times, ours and notary's.

Each method returns the argv of a fresh process; the benchmark times the process.

===========================================================================
SWITCH: which of our clients publishes, verifies and lists.
  * "trustctl" the real CLI: ``trustctl sign --digest``, ``trustctl verify
               --no-registry-check``, ``trustctl inspect``, on repositories in
               trustctl's hash-bin layout (benchmarks/repos.py: ``trustctl init``
               and the owner's keys); the publisher works in a copy of the owner's
               trust dir, the verifier pins the exported root
               (``trustctl trust pin``). Batch rows: one ``trustctl sign
               --from-file`` / ``trustctl verify`` of many tags.
  * "library"  benchmarks/libclient.py: python-tuf only, the same wire protocol,
               on flat repositories (every tag in ``targets``).
  * "auto"     trustctl when a smoke test (pin, sign, verify) passes against the
               running server, else library.
Set with ``benchmarks/run.py --client ...`` or BENCH_CLIENT. The table says which
one ran. If trustctl's flags change, adjust TrustctlClient only.
===========================================================================
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from benchmarks.repos import MEDIA_TYPE, TARGETS_PASSPHRASE
from benchmarks.stacks import NOTARY_BIN, NOTARY_CLIENT_ENV, NotaryStack, base_env

CLIENT_DEFAULT = os.environ.get("BENCH_CLIENT", "auto")
LIBCLIENT = str(Path(__file__).resolve().with_name("libclient.py"))
TRUSTCTL = str(Path(sys.executable).with_name("trustctl"))


# Bytecode cache of our client processes. This machine sets PYTHONDONTWRITEBYTECODE=1,
# which would make every trustctl start compile the project's modules from source
# (~50-100 ms) unlike an installed CLI; the benchmark keeps the cache in its own
# temporary directory instead (set by run.py), never in the source tree.
PYCACHE_PREFIX: Path | None = None


def our_env() -> dict[str, str]:
    env = base_env()
    if PYCACHE_PREFIX is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE_PREFIX)
    return {
        **env,
        "TRUSTCTL_TARGETS_PASSPHRASE": TARGETS_PASSPHRASE,
        "TRUSTCTL_IMPORT_PASSPHRASE": TARGETS_PASSPHRASE,
        "TRUSTCTL_ROOT_PASSPHRASE": "bench root passphrase",
        "TRUSTCTL_DELEGATION_PASSPHRASE": "bench delegation passphrase",
    }


def _run(argv: list[str], timeout: float = 120) -> None:
    r = subprocess.run(
        argv, env=our_env(), capture_output=True, text=True, timeout=timeout, check=False
    )
    if r.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {r.returncode}: {(r.stderr or r.stdout).strip()[-500:]}"
        )


class OurClient(Protocol):
    label: str

    def publisher(self, owner_state: Path, home: Path) -> Path: ...
    def verifier(self, owner_state: Path, home: Path) -> Path: ...
    def publish(self, home: Path, tag: str, digest: str, size: int) -> list[str]: ...
    def verify(self, home: Path, tag: str) -> list[str]: ...
    def list(self, home: Path) -> list[str]: ...
    def reset_cache(self, home: Path) -> None: ...


@dataclass
class LibraryClient:
    """benchmarks/libclient.py, one process per command."""

    url: str
    ca: str
    gun: str
    label = "library client"

    def _argv(self, cmd: str, home: Path, *rest: str) -> list[str]:
        return [sys.executable, LIBCLIENT, cmd, self.url, self.ca, self.gun, str(home), *rest]

    def publisher(self, owner_state: Path, home: Path) -> Path:
        home.mkdir(parents=True, exist_ok=True)
        for name in ("root.json", "targets-key.pem"):
            shutil.copyfile(owner_state / name, home / name)
        return home

    def verifier(self, owner_state: Path, home: Path) -> Path:
        home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(owner_state / "root.json", home / "root.json")
        return home

    def publish(self, home: Path, tag: str, digest: str, size: int) -> list[str]:
        return self._argv("publish", home, tag, digest, str(size))

    def verify(self, home: Path, tag: str) -> list[str]:
        return self._argv("verify", home, tag)

    def list(self, home: Path) -> list[str]:
        return self._argv("list", home)

    def warm_api(self, home: Path, tag: str, reps: int) -> list[str]:
        return self._argv("warm-api", home, tag, str(reps))

    def reset_cache(self, home: Path) -> None:
        """Cold: only the pinned root is left."""
        shutil.rmtree(home / "cache", ignore_errors=True)


@dataclass
class TrustctlClient:
    """The real CLI; ``home`` is a trust directory."""

    url: str
    ca: str
    gun: str
    label = "trustctl"

    def _base(self, home: Path) -> list[str]:
        return [TRUSTCTL, "--server", self.url, "--tls-ca", self.ca, "--trust-dir", str(home)]

    def verifier(self, owner_state: Path, home: Path) -> Path:
        home.mkdir(parents=True, exist_ok=True)
        _run([*self._base(home), "trust", "pin", self.gun, str(owner_state / "root.json")])
        return home

    def publisher(self, owner_state: Path, home: Path) -> Path:
        """A copy of the owner's trust dir (keys, pinned root, metadata cache); for a
        flat repository built with python-tuf, a new one with the targets key imported."""
        if (owner_state / "trust").is_dir():
            shutil.copytree(owner_state / "trust", home)
            return home
        self.verifier(owner_state, home)
        _run([*self._base(home), "key", "import", "--role", "targets", "--gun", self.gun,
              str(owner_state / "targets-key.pem")])  # fmt: skip
        return home

    def publish(self, home: Path, tag: str, digest: str, size: int) -> list[str]:
        return [*self._base(home), "sign", f"{self.gun}:{tag}", "--digest", f"sha256:{digest}",
                "--size", str(size), "--media-type", MEDIA_TYPE]  # fmt: skip

    def verify(self, home: Path, tag: str) -> list[str]:
        return [*self._base(home), "verify", f"{self.gun}:{tag}", "--no-registry-check"]

    def publish_many(
        self, home: Path, listing: Path, tags: list[tuple[str, str, int]]
    ) -> list[str]:
        """One ``sign`` of every (tag, digest hex, size), through a --from-file listing
        (written now) that gives each manifest, so no registry is asked."""
        listing.write_text(
            "".join(f"{self.gun}:{t}@sha256:{d} {n} {MEDIA_TYPE}\n" for t, d, n in tags)
        )
        return [*self._base(home), "sign", "--from-file", str(listing)]

    def verify_many(self, home: Path, tags: list[str]) -> list[str]:
        return [*self._base(home), "verify", *(f"{self.gun}:{t}" for t in tags),
                "--no-registry-check"]  # fmt: skip

    def list(self, home: Path) -> list[str]:
        return [*self._base(home), "inspect", self.gun]

    def reset_cache(self, home: Path) -> None:
        """Cold: drop the metadata cache and the mark that it was verified (as a fresh
        pin has neither; a cache lost after a verify is refused as STATE_CORRUPT); the
        pin (pin.json, pinned_root.json) stays."""
        from trustctl.trustedstate import clear_marker

        clear_marker(home / "tuf" / self.gun)
        shutil.rmtree(home / "tuf" / self.gun / "metadata", ignore_errors=True)


def trustctl_usable(owner_state: Path, work: Path, url: str, ca: str, gun: str) -> tuple[bool, str]:
    """Smoke-test trustctl on a repository built by repos.build_ours: import, pin, sign, verify."""
    if not Path(TRUSTCTL).exists():
        return False, "no trustctl executable"
    client = TrustctlClient(url, ca, gun)
    try:
        pub = client.publisher(owner_state, work / "trustctl-smoke-pub")
        ver = client.verifier(owner_state, work / "trustctl-smoke-ver")
        _run(client.publish(pub, "smoke", "ab" * 32, 100))
        _run(client.verify(ver, "smoke"))
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
        return False, str(e).replace(str(work), "WORK")
    return True, "ok"


# --- notary ----------------------------------------------------------------------------


@dataclass
class NotaryClient:
    """``notary`` 0.7.0 CLI; a verifier gets its own trust directory with the pinned root."""

    stack: NotaryStack
    gun: str
    label = "notary CLI"

    def env(self) -> dict[str, str]:
        return {**base_env(), **NOTARY_CLIENT_ENV}

    def publish(self, tag: str, digest: str, size: int) -> list[str]:
        return self.stack.cli("addhash", self.gun, tag, str(size), "--sha256", digest, "-p")

    def stage(self, tag: str, digest: str, size: int) -> list[str]:
        return self.stack.cli("addhash", self.gun, tag, str(size), "--sha256", digest)

    def publish_staged(self) -> list[str]:
        return self.stack.cli("publish", self.gun)

    def verifier(self, name: str) -> Path:
        """A client config whose trust dir holds only the pinned root (copied from the owner)."""
        d = self.stack.work / f"verifier-{name}"
        meta = d / "trust" / "tuf" / self.gun / "metadata"
        meta.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(
            self.stack.trust_dir / "tuf" / self.gun / "metadata" / "root.json", meta / "root.json"
        )
        cfg = d / "client.json"
        cfg.write_text(
            self.stack.client_config.read_text().replace(
                str(self.stack.trust_dir), str(d / "trust")
            )
        )
        return cfg

    def lookup(self, cfg: Path, tag: str) -> list[str]:
        return [NOTARY_BIN, "-c", str(cfg), "lookup", self.gun, tag]

    def list(self, cfg: Path) -> list[str]:
        return [NOTARY_BIN, "-c", str(cfg), "list", self.gun]

    def reset_cache(self, cfg: Path) -> None:
        meta = cfg.parent / "trust" / "tuf" / self.gun / "metadata"
        for p in meta.glob("*.json"):
            if p.name != "root.json":
                p.unlink()
