"""The bounded fetcher: a hard total deadline, even against a responder that trickles."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from ocsp_responder import GUARD, CRLServer, OCSPResponder, refused_url
from verifier_pki import Authority, issue

from tlstiming.verifiers import Fetcher
from tlstiming.verifiers._fetch import FetchError, redact_url


@pytest.fixture(scope="module")
def ca() -> Authority:
    return issue("Fetch Test CA", None, ca=True)


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    fetcher = Fetcher(max_workers=2)
    yield fetcher
    fetcher.close()


@pytest.fixture
def responder(ca: Authority) -> Iterator[OCSPResponder]:
    with OCSPResponder(ca) as responder:
        yield responder


def test_get_reads_the_whole_body(fetcher: Fetcher) -> None:
    with CRLServer() as server:
        server.crls["/a.crl"] = b"x" * 100_000
        fetched = fetcher.get(server.url("/a.crl"), timeout=GUARD, max_bytes=200_000)
    assert fetched.status == 200
    assert fetched.content == b"x" * 100_000
    assert fetched.content_type == "application/pkix-crl"


@pytest.mark.parametrize(
    ("path", "max_bytes", "kind"),
    [("/missing.crl", 10_000, "http_status"), ("/a.crl", 99, "too_large")],
)
def test_http_errors_and_size_limit(fetcher: Fetcher, path: str, max_bytes: int, kind: str) -> None:
    with CRLServer() as server:
        server.crls["/a.crl"] = b"x" * 100
        with pytest.raises(FetchError) as caught:
            fetcher.get(server.url(path), timeout=GUARD, max_bytes=max_bytes)
    assert caught.value.kind == kind


def test_refused_connection_is_a_network_error(fetcher: Fetcher) -> None:
    with pytest.raises(FetchError) as caught:
        fetcher.get(refused_url(), timeout=GUARD, max_bytes=100)
    assert caught.value.kind == "network"


@pytest.mark.parametrize("url", ["https://127.0.0.1/x", "ftp://127.0.0.1/x", "file:///etc/passwd"])
def test_only_plain_http(fetcher: Fetcher, url: str) -> None:
    with pytest.raises(FetchError) as caught:
        fetcher.get(url, timeout=GUARD, max_bytes=100)
    assert caught.value.kind == "unsupported_url"


def test_a_stalled_responder_does_not_hold_the_caller(
    fetcher: Fetcher, responder: OCSPResponder
) -> None:
    responder.mode = "stall"
    with pytest.raises(FetchError) as caught:
        fetcher.post(responder.url(), b"req", content_type="x/y", timeout=0.2, max_bytes=1000)
    assert caught.value.kind == "timeout"
    # The server's handler got the request and is still blocked: we did not wait for it.
    assert responder.stalled.is_set()
    assert not responder.handler_exited.is_set()


def test_a_trickling_responder_is_cut_off_at_the_deadline(
    fetcher: Fetcher, responder: OCSPResponder
) -> None:
    """Each byte arrives well within httpx's read timeout; only a total deadline stops it."""
    responder.mode = "trickle"
    with pytest.raises(FetchError) as caught:
        fetcher.post(responder.url(), b"req", content_type="x/y", timeout=0.3, max_bytes=1000)
    assert caught.value.kind == "timeout"
    assert not responder.handler_exited.is_set()  # still trickling when we gave up
    # The request's socket was shut down: the server's next write fails.
    assert responder.handler_exited.wait(GUARD)
    assert responder.trickle_outcome == "peer closed"


def test_close_aborts_requests_in_flight(responder: OCSPResponder) -> None:
    fetcher = Fetcher()
    responder.mode = "stall"
    errors: list[FetchError] = []

    def fetch() -> None:
        try:
            fetcher.post(responder.url(), b"r", content_type="x/y", timeout=GUARD, max_bytes=9)
        except FetchError as exc:
            errors.append(exc)

    caller = threading.Thread(target=fetch)
    caller.start()
    assert responder.stalled.wait(GUARD)
    fetcher.close()
    caller.join(GUARD)
    assert not caller.is_alive()
    assert [e.kind for e in errors] == ["closed"]
    assert not responder.handler_exited.is_set()
    with pytest.raises(FetchError) as caught:
        fetcher.get(responder.url(), timeout=GUARD, max_bytes=9)
    assert caught.value.kind == "closed"


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("http://user:secret@ocsp.example/path?token=abc#frag", "http://ocsp.example/path"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/"),
        ("http://ocsp.example", "http://ocsp.example"),
    ],
)
def test_redact_url(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def test_max_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_workers"):
        Fetcher(max_workers=0)
