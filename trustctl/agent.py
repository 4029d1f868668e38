"""``trustctl agent``: a per-user process that runs trustctl commands without start-up cost.

What it is: a fork server. It imports everything trustctl's commands use once, then
listens on a Unix socket. Each ``trustctl`` invocation whose environment names the
socket (``TRUSTCTL_AGENT_SOCKET``, see :mod:`trustctl.launcher`) sends its
arguments, environment, working directory, umask and standard streams; the agent
forks a child that takes all of those over and runs the command exactly as a fresh
process would (own state, own connections, own exit code), with the imports already
done. Nothing is shared between commands except what the agent loaded before forking.

Keys. With ``--unlock`` (the default), ``agent start`` derives the key-encryption key
(PBKDF2, 600,000 rounds) of every key file in the trust directory whose passphrase is
in its environment, and keeps those derived keys in memory (:mod:`trustctl.kdf`). A
child uses a derived key only when the command's own environment carries the same
passphrase for the same file: the agent saves the 100-150 ms of key stretching, it
never hands a key to a client that could not have opened the file itself. The agent
receives the passphrases through a pipe, not its environment (which other processes
of the user could read in ``/proc``), and drops them once it has derived the keys.

Who may connect: the socket lives in a directory only its owner can enter (created
0700, refused when group or others have access), and every connection is checked
with ``SO_PEERCRED``: a process of another user is turned away. Linux only.

Lifetime: the agent exits after ``--idle-timeout`` seconds without a command (default
30 minutes; 0 = never), on ``trustctl agent stop``, or on SIGTERM. Commands already
running finish on their own.
"""

from __future__ import annotations

import gc
import io
import logging
import marshal
import os
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trustctl import __version__
from trustctl.errors import AgentError, TrustctlError
from trustctl.launcher import MAX_MESSAGE, SOCKET_ENV, VERSION, decode, read_message, send_message

__all__ = [
    "AgentError",
    "AgentStatus",
    "default_socket_path",
    "prime_keys",
    "serve",
    "start",
    "status",
    "stop",
]

logger = logging.getLogger(__name__)

DEFAULT_IDLE_TIMEOUT = 1800.0
_PACKAGE = str(Path(__file__).resolve().parent)
_MAX_FDS = 3
_START_TIMEOUT = 60.0


@dataclass(frozen=True)
class AgentStatus:
    socket: str
    pid: int
    version: str
    unlocked_keys: int
    commands: int
    running: int
    idle_timeout: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- where the socket lives ----------------------------------------------------------------


def default_socket_path(environ: Mapping[str, str]) -> Path:
    """``$XDG_RUNTIME_DIR/trustctl/agent.sock``, else ``/tmp/trustctl-<uid>/agent.sock``."""
    runtime = environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) / "trustctl" if runtime else Path(f"/tmp/trustctl-{os.getuid()}")
    return base / "agent.sock"


def _private_dir(directory: Path) -> None:
    """Create ``directory`` 0700, or check that an existing one is ours and private."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = directory.lstat()
    except OSError as e:
        raise AgentError(f"cannot create {directory}: {e.strerror or e}") from e
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise AgentError(
            f"{directory} must be a directory owned by you that only you can enter",
            hint=f"chmod 700 {directory}, or pass --socket in a private directory",
        )


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


# --- keys ----------------------------------------------------------------------------------


def prime_keys(trust_dir: Path, environ: Mapping[str, str]) -> int:
    """Derive the key-encryption key of every key file in ``trust_dir`` whose passphrase
    is in ``environ`` and that the passphrase really opens; keep them in
    :data:`trustctl.kdf.PRIMED`. Returns how many keys were unlocked."""
    from trustctl.kdf import PRIMED, Derivation, decrypt
    from trustctl.keys import KeyStore, PassphraseSource, key_file_params

    store = KeyStore(trust_dir / "private", PassphraseSource(environ))
    unlocked = 0
    for info in store.all_keys():
        passphrase = store.passphrases.from_env(info.role)
        if not passphrase:
            continue
        params = key_file_params(info.path)
        if params is None or PRIMED.has(passphrase, params):
            continue
        key = Derivation(passphrase, params).key()
        if key is None or decrypt(params, key) is None:
            logger.warning("the passphrase in the environment does not open %s", info.path.name)
            continue
        PRIMED.put(passphrase, params, key)
        unlocked += 1
    return unlocked


def _preload() -> None:
    """Import what the commands use, so that forked children start with it loaded."""
    import click
    import tuf.api.metadata
    import tuf.ngclient  # noqa: F401
    import urllib3  # noqa: F401
    from cryptography.hazmat.primitives import padding, serialization  # noqa: F401
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa  # noqa: F401
    from cryptography.hazmat.primitives.ciphers import Cipher  # noqa: F401
    from securesystemslib.signer import CryptoSigner  # noqa: F401

    from trustctl import (  # noqa: F401
        changes,
        client,
        context,
        copy,
        credentials,
        edits,
        fetcher,
        kdf,
        keyformat,
        keys,
        layout,
        output,
        pending,
        reference,
        registry,
        repo,
        transport,
        trust,
        trusted,
        verify,
    )
    from trustctl.cli import main

    ctx = click.Context(main)
    for name in main.list_commands(ctx):
        main.get_command(ctx, name)
    _warm_up()


def _warm_up() -> None:
    """Do once what every command would otherwise do first (measured in the children:
    about 15 ms): load OpenSSL's backend, compile python-tuf's date format, load the
    IDNA codec TLS host names go through."""
    import datetime

    import tuf.api.serialization.json  # noqa: F401
    from cryptography.hazmat.backends.openssl import backend  # noqa: F401
    from cryptography.hazmat.primitives.kdf import pbkdf2  # noqa: F401

    datetime.datetime.strptime("2030-01-01T00:00:00Z", "%Y-%m-%dT%H:%M:%SZ")
    "localhost".encode("idna")


# --- the server ----------------------------------------------------------------------------


def _recv_request(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """The first framed message and the descriptors attached to it."""
    fds: list[int] = []
    data = b""
    try:
        while True:
            length = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
            if length is not None and length > MAX_MESSAGE:
                raise ValueError("message too large")
            if length is not None and len(data) >= 4 + length:
                return decode(data[4 : 4 + length]), fds
            chunk, ancdata, _flags, _addr = conn.recvmsg(65536, socket.CMSG_SPACE(_MAX_FDS * 4))
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    count = len(payload) // 4
                    fds.extend(struct.unpack(f"{count}i", payload[: count * 4]))
            if not chunk:
                raise ConnectionError("connection closed")
            data += chunk
    except BaseException:
        _close_all(fds)
        raise


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


class _Server:
    def __init__(
        self,
        listener: socket.socket,
        path: Path,
        idle_timeout: float,
        unlocked: int,
        peer_uid: Callable[[socket.socket], int] = _peer_uid,
    ) -> None:
        self.peer_uid = peer_uid
        self.listener = listener
        self.path = path
        self.idle_timeout = idle_timeout
        self.unlocked = unlocked
        self.children: set[int] = set()
        self.commands = 0
        self.last_activity = time.monotonic()
        self.stopping = False

    def status(self) -> dict[str, Any]:
        return AgentStatus(
            socket=str(self.path),
            pid=os.getpid(),
            version=__version__,
            unlocked_keys=self.unlocked,
            commands=self.commands,
            running=len(self.children),
            idle_timeout=self.idle_timeout,
        ).to_dict()

    def reap(self) -> None:
        while self.children:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            self.children.discard(pid)

    def idle(self) -> bool:
        return (
            self.idle_timeout > 0
            and not self.children
            and time.monotonic() - self.last_activity > self.idle_timeout
        )

    def run(self) -> None:
        self.listener.settimeout(0.5)
        while not self.stopping and not self.idle():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                self.reap()
                continue
            except InterruptedError:
                continue
            self.last_activity = time.monotonic()
            try:
                self.handle(conn)
            except (OSError, ValueError) as e:
                logger.debug("dropped a connection: %s", e)
            finally:
                conn.close()
            self.reap()

    def handle(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        if self.peer_uid(conn) != os.getuid():
            send_message(conn, {"error": "this agent serves only its own user"})
            return
        request, fds = _recv_request(conn)
        try:
            op = request.get("op")
            if op == "status":
                send_message(conn, self.status())
            elif op == "stop":
                send_message(conn, self.status())
                self.stopping = True
            elif (
                request.get("protocol") != VERSION
                or request.get("version") != __version__
                or request.get("package") != _PACKAGE
            ):
                send_message(
                    conn,
                    {"error": f"the agent runs trustctl {__version__} from {_PACKAGE}"},
                )
            elif len(fds) != 3 or not _valid_command(request):
                send_message(conn, {"error": "malformed request"})
            else:
                conn.settimeout(None)
                pid = os.fork()
                if pid == 0:
                    _run_child(self.listener, conn, request, fds)  # never returns
                self.children.add(pid)
                self.commands += 1
        finally:
            _close_all(fds)


def _valid_command(request: Mapping[str, Any]) -> bool:
    argv, env, cwd = request.get("argv"), request.get("env"), request.get("cwd")
    return (
        isinstance(argv, list)
        and all(isinstance(a, str) for a in argv)
        and isinstance(env, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
        and isinstance(cwd, str)
        and isinstance(request.get("umask", 0o022), int)
    )


def _run_child(
    listener: socket.socket, conn: socket.socket, request: Mapping[str, Any], fds: list[int]
) -> None:
    """In the forked child: become the client's command, run it, report the exit code."""
    code = 1
    try:
        listener.close()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        _close_all([fd for fd in fds if fd > 2])
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
        sys.stdout = io.TextIOWrapper(
            io.FileIO(1, "w", closefd=False), encoding="utf-8", line_buffering=os.isatty(1)
        )
        sys.stderr = io.TextIOWrapper(
            io.FileIO(2, "w", closefd=False),
            encoding="utf-8",
            errors="backslashreplace",
            line_buffering=True,
        )
        os.umask(int(request.get("umask", 0o022)))
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        argv = list(request["argv"])
        sys.argv = ["trustctl", *argv]
        send_message(conn, {"pid": os.getpid()})
        from trustctl.cli import main

        try:
            result = main.main(args=argv, prog_name="trustctl", standalone_mode=False)
            code = result if isinstance(result, int) else 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except KeyboardInterrupt:
            code = 130
    except BaseException:  # noqa: BLE001 - the child must always report and exit
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001, S110 - a closed pipe must not change the exit code
                pass
        try:
            send_message(conn, {"exit": code})
        except OSError:
            pass
        os._exit(code)


def serve(path: Path, *, idle_timeout: float, unlocked: int, ready: io.TextIOBase | None) -> None:
    """Listen on ``path`` and run commands until stopped or idle (see module docstring).

    Raises:
        AgentError: the socket cannot be created, or another agent listens there.
    """
    _private_dir(path.parent)
    if path.exists() or path.is_symlink():
        if _alive(path):
            raise AgentError(
                f"an agent already listens on {path}", hint="stop it with `trustctl agent stop`"
            )
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        listener.bind(str(path))
    except OSError as e:
        raise AgentError(f"cannot listen on {path}: {e.strerror or e}") from e
    finally:
        os.umask(old)
    listener.listen(64)
    bound = os.stat(path).st_ino
    server = _Server(listener, path, idle_timeout, unlocked)

    def on_term(_signum: int, _frame: object) -> None:
        server.stopping = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    if ready is not None:
        ready.write(f"ready {os.getpid()} {unlocked}\n")
        ready.close()
    try:
        server.run()
    finally:
        try:
            if os.stat(path).st_ino == bound:  # still ours, not a successor's
                path.unlink()
        except OSError:
            pass
        listener.close()


def _alive(path: Path) -> bool:
    try:
        _ask(path, "status")
    except AgentError:
        return False
    return True


# --- talking to it -------------------------------------------------------------------------


def _ask(path: Path, op: str) -> dict[str, Any]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    try:
        sock.connect(str(path))
        send_message(sock, {"op": op})
        return read_message(sock)
    except (OSError, ValueError) as e:
        raise AgentError(
            f"no trustctl agent answers on {path}",
            hint=f'start one with `eval "$(trustctl agent start)"`, or unset {SOCKET_ENV}',
        ) from e
    finally:
        sock.close()


def status(path: Path) -> AgentStatus:
    """The running agent's status.

    Raises:
        AgentError: nothing answers on ``path``.
    """
    answer = _ask(path, "status")
    try:
        return AgentStatus(**answer)
    except TypeError as e:
        raise AgentError(f"unexpected answer from the agent on {path}") from e


def stop(path: Path, *, timeout: float = 10.0) -> AgentStatus:
    """Ask the agent on ``path`` to exit; wait until its socket is gone.

    Raises:
        AgentError: nothing answers on ``path``.
    """
    answer = AgentStatus(**_ask(path, "stop"))
    deadline = time.monotonic() + timeout
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return answer


def start(
    path: Path,
    *,
    trust_dir: Path,
    idle_timeout: float,
    unlock: bool,
    environ: Mapping[str, str],
) -> AgentStatus:
    """Start an agent in the background (its own session) and wait until it listens.

    The passphrases reach it through its environment, never its arguments.

    Raises:
        AgentError: it could not start (the reason it gave is in the message).
    """
    if not hasattr(socket, "SO_PEERCRED"):
        raise AgentError("trustctl agent needs Linux (SO_PEERCRED)")
    _private_dir(path.parent)
    if _alive(path):
        raise AgentError(
            f"an agent already listens on {path}", hint="stop it with `trustctl agent stop`"
        )
    # passphrases go through a pipe: an environment stays readable in /proc/<pid>/environ
    secrets = {k: v for k, v in environ.items() if k.endswith("_PASSPHRASE")} if unlock else {}
    env = {k: v for k, v in environ.items() if not k.endswith("_PASSPHRASE") and k != SOCKET_ENV}
    args = [
        sys.executable,
        "-m",
        "trustctl.agent",
        "--socket",
        str(path),
        "--trust-dir",
        str(trust_dir),
        "--idle-timeout",
        repr(float(idle_timeout)),
    ]
    proc = subprocess.Popen(
        args,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(marshal.dumps(secrets))
        proc.stdin.close()
    except BrokenPipeError:
        pass
    line = proc.stdout.readline().decode("utf-8", "replace").strip()
    proc.stdout.close()
    if not line.startswith("ready "):
        proc.wait(timeout=_START_TIMEOUT)
        reason = line.removeprefix("error: ") or f"it exited with status {proc.returncode}"
        raise AgentError(f"the agent did not start: {reason}")
    return status(path)


def _daemon(argv: list[str]) -> int:
    """``python -m trustctl.agent``: the process ``start`` launches."""
    import argparse

    parser = argparse.ArgumentParser(prog="trustctl-agent")
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("--trust-dir", type=Path, required=True)
    parser.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT)
    args = parser.parse_args(argv)
    secrets = decode(sys.stdin.buffer.read())  # passphrases from `start`, through a pipe
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    socket_path, trust_dir = args.socket.absolute(), args.trust_dir.absolute()
    os.chdir("/")  # hold no directory; every child moves to its client's
    # the pipe `start` waits on gets one line; standard output itself goes nowhere
    ready = os.fdopen(os.dup(1), "w")
    os.dup2(devnull, 1)
    os.close(devnull)
    try:
        _preload()
        unlocked = prime_keys(trust_dir, {k: str(v) for k, v in secrets.items()})
        secrets.clear()
        gc.freeze()  # children's collections skip what is loaded: fewer copy-on-write pages
        serve(socket_path, idle_timeout=args.idle_timeout, unlocked=unlocked, ready=ready)
    except Exception as e:  # noqa: BLE001 - reported to `agent start`, one line
        message = e.message if isinstance(e, TrustctlError) else f"{type(e).__name__}: {e}"
        try:
            ready.write(f"error: {message}\n")
            ready.close()
        except (OSError, ValueError):
            pass
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(_daemon(sys.argv[1:]))
