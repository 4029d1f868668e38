"""The ``trustctl`` entry point: run a command here, or in a running ``trustctl agent``.

A fresh Python process spends most of a ``trustctl verify`` starting the interpreter
and importing click, python-tuf, cryptography and urllib3 (about 200 ms here), and
a ``sign`` also derives the key-encryption key from the passphrase (PBKDF2, 600,000
rounds, 100-150 ms). A pipeline that signs or verifies many tags can start one
agent (``eval "$(trustctl agent start)"``, see :mod:`trustctl.agent`) that has all
of that imported; each ``trustctl`` invocation then hands its arguments,
environment, working directory and standard streams to the agent, which forks a
child to run the command exactly as this process would have, and passes back the
exit code.

This module is the client half and imports only the standard library, so that
reaching the agent costs a few milliseconds. It uses the agent only when
``TRUSTCTL_AGENT_SOCKET`` is set and standard input is not a terminal (at a
terminal, commands run here so that passphrase prompts reach it). If the agent
cannot be reached, the command runs here after a one-line warning.

Wire format (a Unix socket, one connection per command): 4-byte big-endian length,
then a dict in :mod:`marshal` format (see :func:`decode`). The request carries ``argv``, ``env``, ``cwd`` and ``version``,
with the client's stdin, stdout and stderr attached as ``SCM_RIGHTS``; the agent
answers ``{"pid": N}`` when the child starts and ``{"exit": code}`` when it ends,
or ``{"error": "..."}`` if it refuses.
"""

from __future__ import annotations

# Only modules built into the interpreter: `socket`, `signal`, `json` and `struct`
# would import enum, re and selectors, which costs more than everything else here.
import _signal
import _socket
import marshal
import os
import sys

__all__ = ["SOCKET_ENV", "main", "read_message", "send_message"]

SOCKET_ENV = "TRUSTCTL_AGENT_SOCKET"
VERSION = "1"  # protocol version; the agent also compares trustctl's own version
MAX_MESSAGE = 4 * 1024 * 1024
_FORWARDED = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP)


class AgentUnavailable(Exception):
    """The agent could not take the command (the caller runs it in-process)."""


def send_message(
    sock: _socket.socket, message: dict[str, object], fds: tuple[int, ...] | list[int] = ()
) -> None:
    """Send one framed message (a dict of str, int, list and dict values), with
    ``fds`` attached as ``SCM_RIGHTS``."""
    data = marshal.dumps(message)
    frame = len(data).to_bytes(4, "big") + data
    if fds:
        rights = b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)
        sent = sock.sendmsg([frame], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
        frame = frame[sent:]
    if frame:
        sock.sendall(frame)


def _recv_exact(sock: _socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            raise ConnectionError("connection closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def decode(data: bytes) -> dict[str, object]:
    """A message body (raises ValueError unless it is a dict).

    marshal, not JSON: both ends are the same user (the agent checks ``SO_PEERCRED``
    before reading anything) running the same trustctl on the same interpreter (it
    compares versions and paths), and marshal needs no import.
    """
    try:
        value = marshal.loads(data)
    except (EOFError, TypeError) as e:
        raise ValueError("bad message") from e
    if not isinstance(value, dict):
        raise ValueError("bad message")  # noqa: TRY004 - one error for any bad frame
    return value


def read_message(sock: _socket.socket) -> dict[str, object]:
    """One framed message (raises ConnectionError on EOF, ValueError on a bad frame)."""
    length = int.from_bytes(_recv_exact(sock, 4), "big")
    if length > MAX_MESSAGE:
        raise ValueError("message too large")
    return decode(_recv_exact(sock, length))


def _trustctl_version() -> str:
    from trustctl import __version__

    return __version__


def run_in_agent(path: str, argv: list[str]) -> int:
    """Run ``trustctl argv`` in the agent at ``path``; its exit code.

    Raises:
        AgentUnavailable: nothing listens there, or the agent refused before starting
            the command (nothing has run; the caller may run it in-process).
    """
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        try:
            sock.connect(path)
            send_message(
                sock,
                {
                    "protocol": VERSION,
                    "version": _trustctl_version(),
                    "package": os.path.dirname(os.path.abspath(__file__)),
                    "argv": argv,
                    "env": dict(os.environ),
                    "cwd": os.getcwd(),
                    "umask": _umask(),
                },
                [0, 1, 2],
            )
            first = read_message(sock)
        except (OSError, ValueError) as e:
            raise AgentUnavailable(str(e) or type(e).__name__) from e
        child = first.get("pid")
        if "error" in first or not isinstance(child, int):
            raise AgentUnavailable(str(first.get("error", "unexpected answer")))

        def forward(signum: int, _frame: object) -> None:
            try:
                os.kill(child, signum)
            except OSError:
                pass

        for signum in _FORWARDED:
            _signal.signal(signum, forward)
        try:
            done = read_message(sock)
        except (OSError, ValueError):
            sys.stderr.write("Error: the trustctl agent stopped while running the command\n")
            sys.stderr.write(
                "Hint: run it again; `trustctl agent status` tells if the agent runs\n"
            )
            return 3
        code = done.get("exit")
        return code if isinstance(code, int) else 1
    finally:
        sock.close()


def main() -> None:
    """Console-script entry point."""
    argv = sys.argv[1:]
    path = os.environ.get(SOCKET_ENV)
    if path and "agent" not in argv and not _is_terminal(0):
        try:
            code = run_in_agent(path, argv)
        except KeyboardInterrupt:
            raise SystemExit(130) from None
        except AgentUnavailable as e:
            sys.stderr.write(
                f"Warning: trustctl agent at {path} not usable ({e}); running without it\n"
            )
        else:
            sys.stdout.flush()
            raise SystemExit(code)
    from trustctl.cli import main as cli_main

    cli_main()


def _umask() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _is_terminal(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False
