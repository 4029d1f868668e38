"""Copy a verified image by digest with skopeo (``trustctl pull --copy-to``).

trustctl never moves image bytes itself: once the tag is verified it hands the
pinned reference ``registry/repo@sha256:...`` to ``skopeo copy --preserve-digests``,
which checks the manifest digest while copying and keeps it unchanged at the
destination. Registry credentials go through a temporary
``--src-authfile`` (mode 0600), never argv.

Example:
    >>> skopeo_copy("127.0.0.1:5000/app@sha256:...", "oci:/tmp/app:v1", plain_http=True)  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from trustctl.credentials import Credentials
from trustctl.errors import CopyFailedError, ToolMissingError

__all__ = ["skopeo_copy"]

logger = logging.getLogger(__name__)


def skopeo_copy(
    source: str,
    dest: str,
    *,
    plain_http: bool = False,
    registry_ca: str | None = None,
    credentials: Credentials | None = None,
    registry_host: str | None = None,
    timeout: float = 600.0,
) -> None:
    """``skopeo copy docker://SOURCE DEST``.

    Args:
        source: the pinned reference (``host/repo@sha256:...``).
        dest: a skopeo destination (``oci:DIR:TAG``, ``dir:DIR``, ``docker://...``).
        plain_http: the source registry is reached without TLS.
        registry_ca: CA bundle file for the source registry.
        credentials: source registry credentials.
        registry_host: the host the credentials are for.

    Raises:
        ToolMissingError: skopeo is not installed.
        CopyFailedError: skopeo failed (its last line of output is in the message).
    """
    exe = shutil.which("skopeo")
    if exe is None:
        raise ToolMissingError(
            "skopeo is not installed, so --copy-to cannot copy the image",
            hint=f"install skopeo (apt-get install skopeo), or pull {source} with your own tool",
        )
    with tempfile.TemporaryDirectory(prefix="trustctl-skopeo-") as tmp:
        # --preserve-digests: the copy must be byte-for-byte the verified manifest
        # (skopeo would otherwise rewrite it, e.g. compress layers, and change the digest).
        args = [exe, "copy", "--retry-times", "2", "--preserve-digests"]
        if plain_http:
            args.append("--src-tls-verify=false")
        if registry_ca:
            certs = Path(tmp, "certs")
            certs.mkdir()
            shutil.copy(registry_ca, certs / "ca.crt")
            args += ["--src-cert-dir", str(certs)]
        if credentials is not None and registry_host:
            auth = base64.b64encode(
                f"{credentials.username}:{credentials.password}".encode()
            ).decode()
            path = Path(tmp, "auth.json")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump({"auths": {registry_host: {"auth": auth}}}, f)
            args += ["--src-authfile", str(path)]
        args += [f"docker://{source}", dest]
        logger.debug("running %s", " ".join(args))
        try:
            proc = subprocess.run(
                args, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as e:
            raise CopyFailedError(f"skopeo copy timed out after {timeout:.0f}s") from e
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise CopyFailedError(f"skopeo could not copy {source} to {dest}: {last[:300]}")
