"""Misuse fails at the call that is wrong, naming the argument (issue #10, item 9).

A timeout of NaN or infinity, a negative size, a sink that is not callable:
each is refused where it is passed, with a ``TypeError`` (wrong kind) or a
``ValueError`` (bad value), not accepted to fail later on a worker thread,
inside a handshake, or never. Also ``tlstiming.httpx.Client(verify=None)``,
which httpx accepts, behaves as httpx does.
"""

from __future__ import annotations

import io
import math
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from http_servers import HTTP1Server
from servers import PKI, server_context

import tlstiming
import tlstiming.httpx as th
from tlstiming import cli
from tlstiming.sinks import BackgroundSink, JsonLinesSink, LoggingSink, Sampled, StructlogSink
from tlstiming.verifiers import ChainAnalysis, CRLVerifier, Fetcher, OCSPVerifier, SPKIPins

NAN, INF = math.nan, math.inf
PIN = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="  # base64 of 32 bytes


def ignore(span: Any) -> None:
    pass


def fetch(timeout: float, max_bytes: int = 1000) -> None:
    fetcher = Fetcher()
    try:
        fetcher.get("http://127.0.0.1:9/", timeout=timeout, max_bytes=max_bytes)
    finally:
        fetcher.close()


# (call, exception, a word of its message: the argument's name)
CONSTRUCTION: dict[str, tuple[Callable[[], object], type[Exception], str]] = {
    # revocation verifiers: the shared options, and each one's own
    "ocsp-timeout-nan": (lambda: OCSPVerifier(timeout=NAN), ValueError, "timeout"),
    "ocsp-timeout-inf": (lambda: OCSPVerifier(timeout=INF), ValueError, "timeout"),
    "ocsp-max-bytes": (lambda: OCSPVerifier(max_response_bytes=-1), ValueError, "max_response"),
    "ocsp-failure-ttl": (lambda: OCSPVerifier(failure_ttl=-5), ValueError, "failure_ttl"),
    "ocsp-failure-ttl-nan": (lambda: OCSPVerifier(failure_ttl=NAN), ValueError, "failure_ttl"),
    "ocsp-no-next-ttl": (
        lambda: OCSPVerifier(ttl_without_next_update=INF),
        ValueError,
        "ttl_without_next_update",
    ),
    "ocsp-skew": (lambda: OCSPVerifier(clock_skew=-1), ValueError, "clock_skew"),
    "ocsp-refresh": (lambda: OCSPVerifier(refresh_ahead=NAN), ValueError, "refresh_ahead"),
    "ocsp-cache-size": (lambda: OCSPVerifier(cache_size=0), ValueError, "cache_size"),
    "ocsp-workers": (lambda: OCSPVerifier(background_workers=1.5), TypeError, "background"),  # type: ignore[arg-type]
    "ocsp-clock": (lambda: OCSPVerifier(clock=5), TypeError, "clock"),  # type: ignore[arg-type]
    "ocsp-fetcher": (lambda: OCSPVerifier(fetcher=5), TypeError, "fetcher"),  # type: ignore[arg-type]
    "crl-timeout-nan": (lambda: CRLVerifier(timeout=NAN), ValueError, "timeout"),
    "crl-max-bytes": (lambda: CRLVerifier(max_bytes=-1), ValueError, "max_bytes"),
    "crl-failure-ttl": (lambda: CRLVerifier(failure_ttl=-5), ValueError, "failure_ttl"),
    "fetcher-workers": (lambda: Fetcher(max_workers=1.5), TypeError, "max_workers"),  # type: ignore[arg-type]
    "fetch-timeout-nan": (lambda: fetch(NAN), ValueError, "timeout"),
    "fetch-timeout-inf": (lambda: fetch(INF), ValueError, "timeout"),
    "fetch-max-bytes": (lambda: fetch(1.0, max_bytes=-1), ValueError, "max_bytes"),
    # the other verifiers
    "chain-days": (lambda: ChainAnalysis(expiring_within_days=NAN), ValueError, "expiring"),
    "chain-flight": (lambda: ChainAnalysis(max_flight_bytes=-1), ValueError, "max_flight"),
    "chain-reject-str": (lambda: ChainAnalysis(reject_on="no_path"), TypeError, "reject_on"),  # type: ignore[arg-type]
    "chain-clock": (lambda: ChainAnalysis(clock=5), TypeError, "clock"),  # type: ignore[arg-type]
    "pins-none": (lambda: SPKIPins(None), TypeError, "pins"),  # type: ignore[arg-type]
    "pins-backup-none": (lambda: SPKIPins([PIN], backup=None), TypeError, "backup"),  # type: ignore[arg-type]
    # sinks
    "subscribe": (lambda: tlstiming.subscribe(None), TypeError, "sink"),
    "background": (lambda: BackgroundSink(None), TypeError, "sink"),  # type: ignore[arg-type]
    "sampled": (lambda: Sampled(None), TypeError, "sink"),  # type: ignore[arg-type]
    "sampled-slow": (lambda: Sampled(ignore, keep_slow_ms=NAN), ValueError, "keep_slow_ms"),
    "sampled-rate": (lambda: Sampled(ignore, max_per_second=NAN), ValueError, "max_per_second"),
    "sampled-burst": (lambda: Sampled(ignore, burst=NAN), ValueError, "burst"),
    "jsonl": (lambda: JsonLinesSink(5), TypeError, "target"),  # type: ignore[arg-type]
    "logging-logger": (lambda: LoggingSink(logger=5), TypeError, "logger"),  # type: ignore[arg-type]
    "logging-level": (lambda: LoggingSink(level="INFO"), TypeError, "level"),  # type: ignore[arg-type]
    "logging-slow": (lambda: LoggingSink(slow_ms=INF), ValueError, "slow_ms"),
    "structlog-logger": (lambda: StructlogSink(logger=5), TypeError, "logger"),
    "structlog-slow": (lambda: StructlogSink(logger=None, slow_ms=NAN), ValueError, "slow_ms"),
    "recorder": (lambda: tlstiming.SpanRecorder(None), TypeError, "maxlen"),  # type: ignore[arg-type]
    "client-sinks": (lambda: th.Client(sinks=[5]), TypeError, "sinks"),  # type: ignore[list-item]
    "client-sinks-int": (lambda: th.Client(sinks=5), TypeError, "sinks"),  # type: ignore[arg-type]
    "async-client-sinks": (lambda: th.AsyncClient(sinks=[5]), TypeError, "sinks"),  # type: ignore[list-item]
    "transport-sinks": (lambda: th.TimedTransport(sinks=[None]), TypeError, "sinks"),  # type: ignore[list-item]
}


@pytest.mark.parametrize(("call", "error", "word"), CONSTRUCTION.values(), ids=CONSTRUCTION)
def test_refused_where_passed(
    call: Callable[[], object], error: type[Exception], word: str
) -> None:
    with pytest.raises(error, match=word):
        call()


@pytest.fixture(params=["background", "jsonl", "logging", "revocation"])
def waiter(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Something with a wait that takes ``timeout=``: flush/close, or wait_idle."""
    if request.param == "background":
        with BackgroundSink(ignore) as sink:
            yield sink
    elif request.param == "jsonl":
        with JsonLinesSink(io.StringIO(), background=False) as jsonl:
            yield jsonl
    elif request.param == "logging":
        logging_sink = LoggingSink(background=False)
        yield logging_sink
    else:
        with OCSPVerifier() as ocsp:
            yield ocsp


@pytest.mark.parametrize("timeout", [NAN, INF, -1.0], ids=["nan", "inf", "negative"])
def test_wait_timeouts_are_finite(waiter: Any, timeout: float) -> None:
    waits = [waiter.wait_idle] if isinstance(waiter, OCSPVerifier) else [waiter.flush, waiter.close]
    for wait in waits:
        with pytest.raises(ValueError, match="timeout"):
            wait(timeout=timeout)
    with pytest.raises(TypeError, match="timeout"):
        waits[0](timeout="1")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
def test_cli_timeout_is_refused_by_the_parser(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["probe", "127.0.0.1:9", "--timeout", value]) == 2
    err = capsys.readouterr().err
    assert "--timeout" in err
    assert len(err.splitlines()) == 1


def test_httpx_client_accepts_verify_none_as_httpx_does(
    pki: PKI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpx hands ``verify=None`` to httpcore: its default trust, the system's and certifi's."""
    ca = tmp_path / "ca.pem"
    pki.ca.cert_pem.write_to_path(str(ca))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # the "system" trust, read by OpenSSL
    with HTTP1Server(server_context(pki.leaf)) as server:
        url = f"https://localhost:{server.port}/"
        with httpx.Client(verify=None) as plain:  # type: ignore[arg-type]
            assert plain.get(url).status_code == 200
        with th.Client(verify=None) as timed:
            response = timed.get(url)
    assert response.status_code == 200
    span = th.request_span_of(response)
    assert span is not None
    assert span.handshake is not None
    context = th.timed_ssl_context(None)
    assert isinstance(context, tlstiming.TimedSSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
