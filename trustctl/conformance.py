"""trustctl as the client under test of the TUF conformance suite.

The TUF project's client conformance suite (``tuf-conformance``) drives a client
through a small command line, ``init`` / ``refresh`` / ``download`` (its
``CLIENT-CLI.md``), against repositories it simulates, and judges the exit codes, the
trusted metadata left in ``--metadata-dir``, the artifacts in ``--target-dir`` and the
requests made. This module is that command line over trustctl's own verification
code: :class:`trustctl.api.Verifier` (python-tuf decides, trustctl labels), with a
:class:`~trustctl.api.Layout` that puts python-tuf's metadata in ``--metadata-dir``
and serves it from ``--metadata-url``.

Two ways to run it (``make test`` runs the suite both ways):

* **fresh**: ``python -m trustctl.conformance ...``: one process, one ``Verifier``
  per command, as ``trustctl verify`` runs.
* **kept**: ``python -m trustctl.conformance --keeper SOCKET ...``: the command is
  handed to a keeper process (``python -m trustctl.conformance serve SOCKET``) that
  keeps one ``Verifier`` per metadata dir across all the commands of a test, as an
  admission controller would. The suite fakes the time per command with ``faketime``;
  the command sends its (faked) time along and the keeper moves its own process clock
  there (libfaketime, ``FAKETIME_TIMESTAMP_FILE``), so python-tuf and the Verifier
  both see the time the suite meant.

The trust dir of a test lives in ``<metadata dir>/trustctl`` (pinned root, trustctl's
own copy of the metadata); the suite only reads ``*.json`` at the top level.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from trustctl.api import Verifier

__all__ = ["main"]

GUN = "conformance"
logger = logging.getLogger("trustctl.conformance")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trustctl.conformance", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--keeper", help="hand the command to the keeper listening on this socket")
    parser.add_argument("--metadata-url")
    parser.add_argument("--metadata-dir")
    parser.add_argument("--target-name", action="append", default=[])
    parser.add_argument("--target-dir")
    parser.add_argument("--target-base-url")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser("init", help="trust the given root (no requests)")
    init.add_argument("trusted_root")
    commands.add_parser("refresh", help="update the trusted metadata (TUF client workflow)")
    commands.add_parser("download", help="download and verify artifacts")
    serve = commands.add_parser("serve", help="run the keeper (one Verifier per metadata dir)")
    serve.add_argument("socket")
    serve.add_argument("--clock-file", help="libfaketime's FAKETIME_TIMESTAMP_FILE")
    return parser


def _trust_dir(metadata_dir: str) -> Path:
    return Path(metadata_dir) / "trustctl"


def _verifier(metadata_dir: str, metadata_url: str) -> Verifier:
    from trustctl.api import Layout, Verifier

    parts = urlsplit(metadata_url)
    url = metadata_url if metadata_url.endswith("/") else f"{metadata_url}/"
    layout = Layout(
        metadata_url=lambda server, gun: url,
        metadata_dir=lambda trust_dir, gun: Path(metadata_dir),
        label_dir=lambda trust_dir, gun: trust_dir / "verified",
    )
    return Verifier(
        f"{parts.scheme}://{parts.netloc}", trust_dir=_trust_dir(metadata_dir), layout=layout
    )


def init(metadata_dir: str, trusted_root: str) -> None:
    """Pin the given root (as ``trustctl trust pin`` stores it); no requests."""
    from trustctl.atomicfile import write_atomic

    data = Path(trusted_root).read_bytes()
    write_atomic(_trust_dir(metadata_dir) / "tuf" / GUN / "pinned_root.json", data)


def refresh(verifier: Verifier, *, kept: bool) -> None:
    """The TUF client workflow: a fresh process refreshes; a kept Verifier answers
    from memory when nothing changed, as for any call."""
    if kept:
        verifier.view(GUN)
    else:
        verifier.refresh(GUN)


def download(verifier: Verifier, names: Sequence[str], target_dir: str, base_url: str) -> None:
    """Look each target up (python-tuf decides) and download it, in order, with one
    view of the repository; stop at the first failure."""
    from trustctl.errors import TagNotSignedError

    view = verifier.view(GUN)
    for name in names:
        found = view.lookup(name)
        if found is None:
            raise TagNotSignedError(f"{name} is not in the repository")
        verifier.check_fresh(view)
        view.download_target(found.target, Path(target_dir), base_url)
        logger.info(
            "%s: %s, signed in %s (delegated by %s)",
            name,
            found.target.hashes,
            found.role,
            found.parent,
        )


def run(args: argparse.Namespace, verifiers: dict[str, Verifier] | None = None) -> int:
    """One command; ``verifiers`` (the keeper's) keeps a Verifier per metadata dir."""
    from trustctl.errors import TrustctlError

    try:
        if args.command == "init":
            if verifiers is not None:
                verifiers.pop(args.metadata_dir, None)
            init(args.metadata_dir, args.trusted_root)
            return 0
        verifier = None if verifiers is None else verifiers.get(args.metadata_dir)
        if verifier is None:
            verifier = _verifier(args.metadata_dir, args.metadata_url)
            if verifiers is not None:
                verifiers[args.metadata_dir] = verifier
        if args.command == "refresh":
            refresh(verifier, kept=verifiers is not None)
        else:
            download(verifier, args.target_name, args.target_dir, args.target_base_url)
    except TrustctlError as e:
        print(f"trustctl conformance client: {e.code}: {e.message}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - the suite counts any failure as exit 1
        print(f"trustctl conformance client: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


# --- kept mode: a keeper process and the command that talks to it -------------------


def _send(path: str, request: dict[str, Any]) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        sock.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    reply: dict[str, Any] = json.loads(data)
    return reply


def serve(path: str, clock_file: str | None) -> int:
    """The keeper: one request at a time, one Verifier per metadata dir, the process
    clock set to each command's time (see module docstring)."""
    import contextlib
    import io

    verifiers: dict[str, Verifier] = {}
    offset = 0.0
    if clock_file is not None:
        Path(clock_file).write_text("+0\n")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)
    while True:
        conn, _ = server.accept()
        with conn:
            data = b""
            while not data.endswith(b"\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            request = json.loads(data)
            if request.get("stop"):
                conn.sendall(b'{"code": 0}\n')
                return 0
            if clock_file is not None:
                real = time.time() - offset
                offset = float(request["now"]) - real
                Path(clock_file).write_text(f"{offset:+.6f}\n")
            for name in [d for d in verifiers if not Path(d).is_dir()]:
                del verifiers[name]  # the test is over
            args = _parser().parse_args(request["argv"])
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                code = run(args, verifiers)
            conn.sendall(json.dumps({"code": code, "stderr": err.getvalue()}).encode() + b"\n")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose > 1 else logging.WARNING)
    if args.command == "serve":
        return serve(args.socket, args.clock_file)
    if args.keeper:
        forwarded = [
            a for i, a in enumerate(argv) if a != "--keeper" and argv[i - 1 : i] != ["--keeper"]
        ]
        reply = _send(args.keeper, {"argv": forwarded, "now": time.time()})
        sys.stderr.write(reply.get("stderr", ""))
        return int(reply["code"])
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
