"""A publishing client over real HTTPS for end-to-end tests (python-tuf + urllib3 only)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import urllib3
from securesystemslib.signer import Key
from tuf.api.metadata import Metadata, Targets

from tests.tufrepo import Owner


@dataclass
class Remote:
    url: str
    gun: str
    ca_file: str
    pool: urllib3.PoolManager = field(init=False)

    def __post_init__(self) -> None:
        self.pool = urllib3.PoolManager(ca_certs=self.ca_file, maxsize=16)

    def tuf_url(self, name: str = "") -> str:
        return f"{self.url}/v2/{self.gun}/_trust/tuf/{name}"

    def server_key(self, role: str) -> Key:
        resp = self.pool.request("GET", self.tuf_url(f"{role}.key"))
        assert resp.status == 200, resp.data
        d = json.loads(resp.data)
        return Key.from_dict(d.pop("keyid"), d)

    def new_owner(self) -> Owner:
        return Owner(
            timestamp_key=self.server_key("timestamp"), snapshot_key=self.server_key("snapshot")
        )

    def publish(self, files: dict[str, bytes], timeout: float = 30) -> urllib3.BaseHTTPResponse:
        fields = [("files", (role, raw, "application/json")) for role, raw in files.items()]
        return self.pool.request(
            "POST", self.tuf_url(), fields=fields, timeout=timeout, retries=False
        )

    def get(self, name: str) -> urllib3.BaseHTTPResponse:
        return self.pool.request("GET", self.tuf_url(name), retries=False)

    def current(self) -> dict[str, bytes]:
        return {r: self.get(f"{r}.json").data for r in ("root", "targets", "snapshot", "timestamp")}

    def publish_tag(self, owner: Owner, tag: str, attempts: int = 50) -> int:
        """Add ``tag`` on top of the current targets, rebasing on VERSION conflicts.

        Returns the HTTP status of the last attempt (200 when acknowledged).
        """
        status = 0
        for _ in range(attempts):
            resp = self.get("targets.json")
            if resp.status != 200:
                return resp.status
            owner.targets = Metadata[Targets].from_bytes(resp.data).signed
            owner.add_tag(tag)
            answer = self.publish({"targets": owner.targets_bytes()})
            status = answer.status
            if status != 409:
                return status
        return status
