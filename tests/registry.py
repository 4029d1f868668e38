"""A real OCI registry for tests: Debian's ``docker-registry`` on 127.0.0.1.

``start_registry(workdir)`` writes a minimal config (filesystem storage under
``workdir``, ``http.addr`` on a free loopback port, optional ``auth`` section),
starts ``/usr/bin/docker-registry serve config.yml`` and waits until ``GET /v2/``
answers. ``RegistryProcess.stop()`` ends that process by its pid.

``push_image(url, repo, tag, content)`` pushes a tiny OCI image over the Registry
API (config blob and one layer blob through POST/PUT uploads, then the manifest) and
returns ``(digest, size, media_type)`` of the manifest; ``push_index`` pushes an OCI
index over such images.

Example (pytest)::

    def test_x(registry):
        digest, size, media_type = push_image(registry.url, "library/app", "v1", b"hello")
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import urllib3

__all__ = [
    "OCI_INDEX",
    "OCI_MANIFEST",
    "REGISTRY_BINARY",
    "RegistryProcess",
    "free_port",
    "push_image",
    "push_index",
    "start_registry",
]

REGISTRY_BINARY = os.environ.get("TRUSTCTL_TEST_REGISTRY_BINARY", "/usr/bin/docker-registry")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_HTTP = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=30))


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RegistryProcess:
    """A running docker-registry; ``host`` is ``127.0.0.1:<port>``."""

    host: str
    workdir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def stop(self) -> None:
        """Stop this registry process (by its pid only)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _config_yaml(root: Path, addr: str, auth: Mapping[str, Any] | None) -> str:
    lines = [
        "version: 0.1",
        "log:",
        "  level: warn",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {root}",
        "  delete:",
        "    enabled: true",
        "http:",
        f"  addr: {addr}",
        "  headers:",
        "    X-Content-Type-Options: [nosniff]",
    ]
    if auth:
        lines.append("auth:")
        for kind, options in auth.items():
            lines.append(f"  {kind}:")
            for key, value in options.items():
                lines.append(f"    {key}: {value}")
    return "\n".join(lines) + "\n"


def start_registry(
    workdir: Path, *, auth: Mapping[str, Any] | None = None, timeout: float = 20.0
) -> RegistryProcess:
    """Start docker-registry on a free loopback port and wait until it answers.

    Args:
        workdir: directory for the config, the storage and the log.
        auth: optional ``auth`` section, e.g. ``{"htpasswd": {"realm": "r", "path": "/x"}}``.

    Raises:
        RuntimeError: the binary is missing or the registry did not come up.
    """
    if not (Path(REGISTRY_BINARY).exists() or shutil.which(REGISTRY_BINARY)):
        raise RuntimeError("docker-registry not found: install Debian's docker-registry package")
    workdir.mkdir(parents=True, exist_ok=True)
    storage = workdir / "storage"
    storage.mkdir(exist_ok=True)
    last_error = ""
    for _attempt in range(3):  # the free port may be taken between probe and bind
        host = f"127.0.0.1:{free_port()}"
        config = workdir / "config.yml"
        config.write_text(_config_yaml(storage, host, auth))
        log_path = workdir / "registry.log"
        log = log_path.open("wb")
        proc = subprocess.Popen(
            [REGISTRY_BINARY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        reg = RegistryProcess(host, workdir, proc, log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                last_error = reg.log()
                break
            try:
                r = _HTTP.request("GET", f"http://{host}/v2/")
                if r.status in (200, 401):
                    return reg
            except urllib3.exceptions.HTTPError:
                pass
            time.sleep(0.05)
        else:
            reg.stop()
            raise RuntimeError(
                f"docker-registry did not answer on {host} within {timeout}s:\n{reg.log()}"
            )
    raise RuntimeError(f"docker-registry exited at start:\n{last_error}")


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _check(resp: urllib3.BaseHTTPResponse, expected: int, what: str) -> None:
    if resp.status != expected:
        raise RuntimeError(f"{what}: HTTP {resp.status}: {resp.data[:300]!r}")


def _upload_blob(base: str, repo: str, data: bytes, headers: Mapping[str, str]) -> str:
    digest = _digest(data)
    r = _HTTP.request("POST", f"{base}/v2/{repo}/blobs/uploads/", headers=dict(headers))
    _check(r, 202, "start blob upload")
    location = r.headers["Location"]
    if location.startswith("/"):
        location = base + location
    sep = "&" if "?" in location else "?"
    r = _HTTP.request(
        "PUT",
        f"{location}{sep}digest={digest}",
        body=data,
        headers={
            **headers,
            "Content-Type": "application/octet-stream",
            "Content-Length": str(len(data)),
        },
    )
    _check(r, 201, "finish blob upload")
    return digest


def _put_manifest(
    base: str, repo: str, ref: str, body: bytes, media_type: str, headers: Mapping[str, str]
) -> str:
    r = _HTTP.request(
        "PUT",
        f"{base}/v2/{repo}/manifests/{ref}",
        body=body,
        headers={**headers, "Content-Type": media_type},
    )
    _check(r, 201, f"put manifest {repo}:{ref}")
    return _digest(body)


def basic_auth(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def push_image(
    registry_url: str,
    repo: str,
    tag: str,
    content_bytes: bytes,
    *,
    headers: Mapping[str, str] | None = None,
) -> tuple[str, int, str]:
    """Push a one-layer OCI image whose layer is ``content_bytes``; tag it ``tag``.

    Returns:
        ``(manifest digest "sha256:...", manifest size, manifest media type)``.
    """
    hdrs = dict(headers or {})
    layer_digest = _upload_blob(registry_url, repo, content_bytes, hdrs)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
            "config": {},
        },
        sort_keys=True,
    ).encode()
    config_digest = _upload_blob(registry_url, repo, config, hdrs)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest,
                    "size": len(content_bytes),
                }
            ],
        },
        sort_keys=True,
    ).encode()
    digest = _put_manifest(registry_url, repo, tag, manifest, OCI_MANIFEST, hdrs)
    return digest, len(manifest), OCI_MANIFEST


def push_index(
    registry_url: str,
    repo: str,
    tag: str,
    platforms: Mapping[str, bytes],
    *,
    headers: Mapping[str, str] | None = None,
) -> tuple[str, int, str]:
    """Push one image per ``"os/arch" -> layer content`` and an OCI index over them."""
    entries = []
    for platform, content in sorted(platforms.items()):
        os_name, _, arch = platform.partition("/")
        digest, size, media_type = push_image(
            registry_url, repo, f"{tag}-{os_name}-{arch}", content, headers=headers
        )
        entries.append(
            {
                "mediaType": media_type,
                "digest": digest,
                "size": size,
                "platform": {"os": os_name, "architecture": arch},
            }
        )
    index = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}, sort_keys=True
    ).encode()
    digest = _put_manifest(registry_url, repo, tag, index, OCI_INDEX, dict(headers or {}))
    return digest, len(index), OCI_INDEX


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """Debian's docker-registry on a free loopback port, for the whole session."""
    try:
        reg = start_registry(tmp_path_factory.mktemp("registry"))
    except RuntimeError as e:
        pytest.fail(str(e))
    try:
        yield reg
    finally:
        reg.stop()
