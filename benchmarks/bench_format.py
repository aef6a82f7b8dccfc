"""What a sink spends formatting one span: flat log fields and the nested export.

Real TLS 1.3 spans (the server of ``bench_handshake.py`` in its own process)
and request spans built around them (a ``RequestSpan`` with the handshake
that opened its connection, as ``tlstiming.httpx`` makes). Timed per span,
median of all spans:

``flatten``
    ``tlstiming.sinks.flatten(span)``: the flat fields every log sink
    (structlog, ``logging``, OpenTelemetry attributes) writes.
``to_dict``
    ``span.to_dict()``: the nested export (JSON lines).

Two columns. **warm**: the same span again and again, its views (phases,
facts, certificates) already computed: the formatting alone. **cold**: each
span's first formatting, views included: what a sink really pays per span
(the handshake's views are computed once, by whichever reader comes first).
A ``plain`` ``ssl`` handshake (no tlstiming) on the same connection setup is
timed for scale.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from _common import (
    HOSTNAME,
    Certs,
    certificates,
    connect,
    environment,
    plain_context,
    server_process,
    table,
    timed_context,
)

import tlstiming
from tlstiming.sinks import flatten
from tlstiming.spans.request import ConnectAttempt, ConnectionInfo, RequestRecord, RequestSpan

_perf = time.perf_counter_ns
_MS = 1_000_000


class _URL:
    """What a request span reads of a URL (``httpx.URL`` has it)."""

    scheme = "https"
    host = HOSTNAME
    port = 8443
    raw_path = b"/v1/items?page=2"


def handshake_spans(certs: Certs, port: int, n: int) -> list[tlstiming.HandshakeSpan]:
    """``n`` fresh spans of real handshakes (nobody has read them yet)."""
    recorder = tlstiming.SpanRecorder(n)
    ctx = timed_context(certs, recorder)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    for _ in range(n):
        handshake(ctx, port)
    return list(recorder.spans)


def handshake(ctx: Any, port: int) -> int:
    """One handshake on a fresh connection; its wall time in ns."""
    sock = connect(port)
    start = _perf()
    tls = ctx.wrap_socket(sock, server_hostname=HOSTNAME)
    wall = _perf() - start
    tls.recv(1)
    tls.close()
    return wall


def request_span(handshake: tlstiming.HandshakeSpan, span_id: int) -> RequestSpan:
    """A GET that opened its connection with ``handshake`` (DNS, connect, TLS, request)."""
    start, end = handshake.start_ns, handshake.end_ns
    record = RequestRecord(span_id, start - 3 * _MS, "GET", _URL())
    record.marks = [("dns", start - 2 * _MS), ("connect", start - _MS), ("tls", start)]
    record.write_ns = end
    record.sent_ns, record.head_ns = end + _MS // 10, end + _MS
    record.end_ns, record.end_unix_ns = end + 2 * _MS, time.time_ns()
    record.status_code, record.http_version = 200, b"HTTP/1.1"
    record.connection = ConnectionInfo(
        opened_by=f"{span_id:016x}",
        handshake=handshake,
        resolved=("127.0.0.1", "::1"),
        attempts=(
            ConnectAttempt(address="127.0.0.1", port=8443, start_ns=start - _MS, end_ns=start),
        ),
    )
    return RequestSpan(record)


def per_span_us(spans: Iterable[Any], work: Callable[[Any], object]) -> float:
    """Median µs of ``work(span)`` over ``spans``."""
    times = []
    for span in spans:
        start = _perf()
        work(span)
        times.append(_perf() - start)
    return statistics.median(times) / 1e3


def measure(
    spans: Sequence[Any], cold: Sequence[Any], work: Callable[[Any], object], repeat: int
) -> tuple[float, float]:
    """(warm, cold) µs per span: ``spans[0]`` again and again, then each of ``cold`` once."""
    work(spans[0])
    return per_span_us([spans[0]] * repeat, work), per_span_us(cold, work)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=300, help="fresh spans per cold row")
    parser.add_argument("--repeat", type=int, default=3000, help="calls per warm row")
    parser.add_argument("--quick", action="store_true", help="a few seconds: smoke test only")
    args = parser.parse_args(argv)
    if args.quick:
        args.spans, args.repeat = 10, 50
    n = args.spans
    print(f"bench_format: {environment()}")
    print(f"  {n} fresh spans per cold row, {args.repeat} calls per warm row; µs per span")
    with contextlib.ExitStack() as stack:
        certs: Certs = stack.enter_context(certificates())
        port = stack.enter_context(server_process(certs, "handshake", "1.3"))
        plain = plain_context(certs)
        plain_us = statistics.median(handshake(plain, port) for _ in range(n)) / 1e3
        fresh = handshake_spans(certs, port, 4 * n + 1)
    requests = [request_span(h, i + 1) for i, h in enumerate(fresh[2 * n : 4 * n + 1])]
    rows = [["plain ssl handshake (for scale)", f"{plain_us:.1f}", ""]]
    for name, warm, cold, work in (
        ("handshake flatten", fresh[:1], fresh[1 : n + 1], flatten),
        ("handshake to_dict", fresh[:1], fresh[n + 1 : 2 * n + 1], _to_dict),
        ("request flatten", requests[:1], requests[1 : n + 1], flatten),
        ("request to_dict", requests[:1], requests[n + 1 :], _to_dict),
    ):
        warm_us, cold_us = measure(warm, cold, work, args.repeat)
        rows.append([name, f"{warm_us:.1f}", f"{cold_us:.1f}"])
    print(table(["per span", "warm µs", "cold µs"], rows))
    return 0


def _to_dict(span: Any) -> object:
    return span.to_dict()


if __name__ == "__main__":
    sys.exit(main())
