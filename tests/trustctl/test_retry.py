"""trustctl.retry: what is retried, for how long, and what is handed back (fake clock)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from trustctl.client import ServerClient
from trustctl.errors import PublishUncertainError, ServerUnavailableError
from trustctl.retry import RetryingTransport, RetryPolicy, retry_after
from trustctl.transport import Response, TransportError

URL = "https://notary.example/v2/reg/app/_trust/tuf/"


@dataclass
class FakeTime:
    now: float = 100.0
    slept: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _503(code: str | None = "SIGNER_UNAVAILABLE", **headers: str) -> Response:
    body = (
        json.dumps({"errors": [{"code": code, "message": "try again"}]}).encode() if code else b""
    )
    return Response(503, {k.lower().replace("_", "-"): v for k, v in headers.items()}, body)


OK = Response(200, {}, b"{}")


class Script:
    """A transport answering from a list: Responses are returned, exceptions raised."""

    def __init__(self, *answers: Response | TransportError) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    def request(self, method: str, url: str, **_kwargs: Any) -> Response:
        self.calls.append(method)
        answer = self.answers.pop(0)
        if isinstance(answer, TransportError):
            raise answer
        return answer


def _transport(script: Script, t: FakeTime, budget: float = 30.0) -> RetryingTransport:
    policy = RetryPolicy(budget=budget, clock=t.clock, sleep=t.sleep, random=lambda: 0.5)
    return RetryingTransport(script, policy)


RESET = TransportError(URL, "connection closed before the answer arrived", sent=True)
REFUSED = TransportError(URL, "connection refused", sent=False)
TLS = TransportError(URL, "TLS error: CERTIFICATE_VERIFY_FAILED", tls=True)

RETRIED: list[tuple[str, str, Response | TransportError]] = [
    ("get-503-signer", "GET", _503()),
    ("get-503-plain", "GET", _503(None)),
    ("get-502", "GET", Response(502, {}, b"bad gateway")),
    ("get-504", "GET", Response(504, {}, b"")),
    ("get-reset", "GET", RESET),
    ("get-refused", "GET", REFUSED),
    ("put-503", "PUT", _503("STORAGE_UNAVAILABLE")),
    ("post-503-storage", "POST", _503("STORAGE_UNAVAILABLE")),
    ("post-503-signer", "POST", _503("SIGNER_UNAVAILABLE")),
    ("post-refused", "POST", REFUSED),
]


@pytest.mark.parametrize(("method", "first"), [r[1:] for r in RETRIED], ids=[r[0] for r in RETRIED])
def test_retriable_answers_are_retried(method: str, first: Response | TransportError) -> None:
    t = FakeTime()
    script = Script(first, OK)
    assert _transport(script, t).request(method, URL).status == 200
    assert script.calls == [method, method] and len(t.slept) == 1


NOT_RETRIED: list[tuple[str, str, Response | TransportError]] = [
    ("post-reset-may-be-stored", "POST", RESET),
    ("post-502-may-be-stored", "POST", Response(502, {}, b"")),
    ("post-504-may-be-stored", "POST", Response(504, {}, b"")),
    ("post-503-without-our-code", "POST", _503(None)),
    ("get-500-a-bug", "GET", Response(500, {}, b"")),
    ("get-tls", "GET", TLS),
    ("get-404", "GET", Response(404, {}, b"")),
    ("post-409", "POST", Response(409, {}, b"")),
]


@pytest.mark.parametrize(
    ("method", "first"), [r[1:] for r in NOT_RETRIED], ids=[r[0] for r in NOT_RETRIED]
)
def test_unsafe_or_final_answers_are_handed_back(
    method: str, first: Response | TransportError
) -> None:
    t = FakeTime()
    script = Script(first, OK)
    transport = _transport(script, t)
    if isinstance(first, TransportError):
        with pytest.raises(TransportError):
            transport.request(method, URL)
    else:
        assert transport.request(method, URL).status == first.status
    assert script.calls == [method] and t.slept == []


def test_backoff_grows_honours_retry_after_and_stops_at_the_budget(
    caplog: pytest.LogCaptureFixture,
) -> None:
    t = FakeTime()
    script = Script(*[_503(retry_after="3")] * 3, *[_503()] * 50)
    with caplog.at_level(logging.INFO, logger="trustctl.retry"):
        resp = _transport(script, t, budget=20).request("POST", URL)
    assert resp.status == 503 and resp.gave_up is not None
    assert t.slept[:3] == [3.0, 3.0, 3.0]  # Retry-After is the least delay
    assert t.slept[3:6] == [1.5, 3.0, 3.0]  # then doubling (jitter 0.5 here), capped at 4 s
    assert sum(t.slept) <= 20
    assert "in " in resp.gave_up and f"after {len(t.slept) + 1} tries" in resp.gave_up
    assert "SIGNER_UNAVAILABLE" in caplog.text and "retry 1 in 3.0 s" in caplog.text


def test_a_budget_of_zero_turns_retries_off() -> None:
    t = FakeTime()
    script = Script(_503(), OK)
    assert _transport(script, t, budget=0).request("GET", URL).status == 503
    assert t.slept == []


def test_a_retry_after_longer_than_the_budget_left_gives_up_at_once() -> None:
    t = FakeTime()
    script = Script(_503(retry_after="60"), OK)
    assert _transport(script, t, budget=30).request("GET", URL).status == 503
    assert t.slept == []


def test_retry_after_as_an_http_date() -> None:
    from datetime import UTC, datetime

    resp = Response(503, {"retry-after": "Wed, 21 Oct 2026 07:28:05 GMT"}, b"")
    assert retry_after(resp, lambda: datetime(2026, 10, 21, 7, 28, 0, tzinfo=UTC)) == 5.0
    assert retry_after(Response(503, {"retry-after": "soon"}, b"")) is None


def test_the_final_error_names_the_cause_and_the_time_spent() -> None:
    t = FakeTime()
    transport = _transport(Script(*[REFUSED] * 100), t, budget=5)
    with pytest.raises(TransportError) as info:
        transport.request("GET", URL)
    assert info.value.reason.startswith("connection refused (gave up after")
    assert " in " in info.value.reason and info.value.reason.endswith(" s)")


PublishCall = Callable[[ServerClient], None]


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (RESET, PublishUncertainError),
        (Response(502, {}, b""), PublishUncertainError),
        (Response(504, {}, b""), PublishUncertainError),
        (_503("SIGNER_UNAVAILABLE"), ServerUnavailableError),
    ],
    ids=["reset", "502", "504", "503-refused"],
)
def test_a_publish_whose_outcome_is_unknown_says_so(
    answer: Response | TransportError, error: type[Exception]
) -> None:
    client = ServerClient("https://notary.example", Script(answer))
    with pytest.raises(error) as info:
        client.publish("reg/app", {"targets": b"{}"})
    assert (type(info.value) is PublishUncertainError) == (error is PublishUncertainError)


def test_a_read_that_ran_out_of_budget_says_why_and_how_long() -> None:
    from trustctl.fetcher import ServerHTTPError, TransportFetcher
    from trustctl.tufview import map_tuf_error

    t = FakeTime()
    fetcher = TransportFetcher(
        _transport(Script(*[_503("STORAGE_UNAVAILABLE")] * 100), t, budget=10)
    )
    with pytest.raises(ServerHTTPError) as info:
        fetcher._fetch(URL + "timestamp.json")
    error = map_tuf_error(info.value, "reg/app", "https://notary.example")
    assert isinstance(error, ServerUnavailableError)
    assert "HTTP 503 STORAGE_UNAVAILABLE; gave up after" in error.message and " s)" in error.message


def test_a_server_failure_names_the_request_id_for_the_operator() -> None:
    t = FakeTime()
    answer = Response(503, {"x-request-id": "9f2c4e1a7b3d5c60"}, _503().data)
    client = ServerClient("https://notary.example", _transport(Script(*[answer] * 50), t, budget=3))
    with pytest.raises(ServerUnavailableError) as info:
        client.publish("reg/app", {"targets": b"{}"})
    assert "SIGNER_UNAVAILABLE" in info.value.message
    assert (
        "gave up after" in info.value.message and "request 9f2c4e1a7b3d5c60" in info.value.message
    )
