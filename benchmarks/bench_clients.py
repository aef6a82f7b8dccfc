"""requests on loopback: tlstiming.requests (and OpenTelemetry) against plain requests.

Client: ``requests.Session.get`` of a 2-byte response, timed as a whole (wall
and client-thread CPU). Server: ``_http_server.py`` (plain stdlib HTTP/1.1
over TLS 1.3) in a separate process. Two kinds of request, interleaved in
the same rounds:

``fresh``
    every request opens a new connection: the pool's connection is closed
    after each request, outside the timed region (DNS of ``localhost``, TCP
    connect, TLS handshake, request).
``keepalive``
    every request reuses one pooled connection.

Every variant gives its adapter one context built once (the recommended
setup, docs/requests.md) and ``verify=`` the benchmark CA's path, which
requests and urllib3 load into the context for every new connection in
every variant alike. Variants per kind:

``plain``
    ``requests.Session`` whose ``HTTPAdapter`` passes
    ``ssl.create_default_context(...)`` to urllib3.
``tlstiming``
    ``tlstiming.requests.Session`` with a ``tlstiming.create_default_context()``
    context, request spans delivered to a bounded deque (handshake spans are
    built too).
``context only``
    the plain adapter given a ``tlstiming.create_default_context()`` context:
    the handshake spans alone (what the adapter adds is ``tlstiming`` minus this).
``otel``
    plain requests instrumented by ``opentelemetry-instrumentation-requests``
    with an SDK ``TracerProvider`` whose exporter drops every span. Skipped
    if not installed.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import socket
import ssl
import struct
import sys
import time
from collections.abc import Callable
from typing import Any, Final

import requests
import requests.adapters
import urllib3
from _common import (
    CPU,
    PLACEMENTS,
    Certs,
    Sample,
    Samples,
    certificates,
    dropping_tracer_provider,
    environment,
    interleave,
    median_ns,
    pinned,
    placement,
    ratio,
    table,
)
from bench_httpx import http_server

import tlstiming
import tlstiming.requests

BUDGETS: Final = {"fresh": 1.02, "keepalive": 1.015}  # issue #14
KINDS: Final = ("fresh", "keepalive")
_SOCKET_OPTIONS: Final = [
    *urllib3.connection.HTTPConnection.default_socket_options,
    # Close with a reset: no TIME_WAIT pile-up over thousands of fresh connections.
    (socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)),
]

_perf = time.perf_counter_ns
_cpu = time.thread_time_ns


def _with_options(base: type[Any], context: ssl.SSLContext) -> Any:
    """An adapter of class ``base`` whose pools use ``context`` and the socket options."""

    class Adapter(base):  # type: ignore[misc]
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            kwargs.update(ssl_context=context, socket_options=_SOCKET_OPTIONS)
            super().init_poolmanager(*args, **kwargs)

    return Adapter()


def otel_instrument(session: requests.Session) -> bool:
    """Instrument requests with OpenTelemetry, spans built and dropped; False if unavailable."""
    try:
        from opentelemetry.instrumentation.requests import RequestsInstrumentor
    except ImportError:
        return False
    provider = dropping_tracer_provider()
    if provider is None:
        return False
    RequestsInstrumentor().instrument(tracer_provider=provider)  # process-wide: all variants
    return True


def _drop_connections(session: requests.Session) -> None:
    """Close every pooled connection (kept in its pool: the next request reconnects)."""
    for adapter in session.adapters.values():
        manager: Any = getattr(adapter, "poolmanager", None)
        for key in list(manager.pools.keys()) if manager is not None else ():
            pool = manager.pools[key]
            if pool.pool is not None and not pool.pool.empty():
                conn = pool.pool.get_nowait()  # the last one used (a LIFO queue)
                if conn is not None:
                    conn.close()
                pool.pool.put_nowait(None)  # an empty slot: the pool builds a new connection


def measure(session: requests.Session, url: str, ca: str, fresh: bool) -> Callable[[], Sample]:
    """One ``session.get(url)``: (wall ns, CPU ns)."""

    def run() -> Sample:
        cpu = _cpu()
        start = _perf()
        session.get(url, verify=ca).content  # noqa: B018
        wall = _perf() - start
        sample = wall, _cpu() - cpu
        if fresh:
            _drop_connections(session)
        return sample

    return run


class Setup:
    """The sessions of one kind of request, built once, outside the timed region."""

    def __init__(self, kind: str, certs: Certs, port: int, stack: contextlib.ExitStack) -> None:
        self.kind = kind
        self.spans: collections.deque[Any] = collections.deque(maxlen=1000)
        url = f"https://localhost:{port}/"
        sessions: dict[str, requests.Session] = {}
        for name, context in (
            ("plain", ssl.create_default_context(cafile=certs.ca_pem)),
            ("tlstiming", tlstiming.create_default_context(cafile=certs.ca_pem)),
            ("context only", tlstiming.create_default_context(cafile=certs.ca_pem)),
        ):
            session = stack.enter_context(requests.Session())
            if name == "tlstiming":
                base: type[Any] = tlstiming.requests.TimedHTTPAdapter
                adapter = _with_options(base, context)
                adapter.add_sink(self.spans.append)
            else:
                adapter = _with_options(requests.adapters.HTTPAdapter, context)
            session.mount("https://", adapter)
            sessions[name] = session
        self.variants = list(sessions)
        fresh = kind == "fresh"
        self.measures = {
            f"{kind} {name}": measure(s, url, certs.ca_pem, fresh) for name, s in sessions.items()
        }

    def report(self, samples: Samples, otel: bool) -> tuple[str, bool]:
        """This kind's table, and whether the budget is met."""
        base = f"{self.kind} plain"
        rows = [["plain", f"{median_ns(samples, base) / 1e3:.1f}", "1", "", "1"]]
        ratios = {}
        for name in self.variants[1:]:
            key = f"{self.kind} {name}"
            r = ratios[name] = ratio(samples, key, base)
            cpu = ratio(samples, key, base, CPU)
            us = median_ns(samples, key) / 1e3
            rows.append([name, f"{us:.1f}", r.cell(), f"{r.pooled:.3f}", f"{cpu.median:.3f}"])
        budget = BUDGETS[self.kind]
        met = ratios["tlstiming"].median <= budget and len(self.spans) > 0
        reused = {s.reused for s in self.spans}
        lines = [
            f"requests {self.kind}: median of per-round ratios to plain [interquartile range]",
            table(["variant", "median us", "wall ratio [IQR]", "pooled", "cpu ratio"], rows),
            f"  tlstiming/plain = {ratios['tlstiming'].median:.3f}"
            f"  (budget <= {budget}: {'met' if met else 'NOT MET'});"
            f" spans kept: {len(self.spans)}, reused connections: {sorted(reused)}",
        ]
        if otel:
            lines.append("  otel: instrumented every variant (process-wide); ratios include it")
        else:
            lines.append("  otel: opentelemetry-instrumentation-requests is not installed")
        return "\n".join(lines), met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="interleaved rounds")
    parser.add_argument("--batch", type=int, default=20, help="requests per variant per round")
    parser.add_argument("--quick", action="store_true", help="a few seconds: smoke test only")
    parser.add_argument("--placement", choices=PLACEMENTS, default="split", help="CPU pinning")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--otel", action="store_true", help="instrument requests with OTel")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.batch = 10, 3
    place = placement(args.placement)
    print(f"bench_clients: {environment()}, requests {requests.__version__}")  # type: ignore[attr-defined]
    print(
        f"  {args.rounds} rounds x {args.batch} requests per variant; "
        f"server in a process; placement {place.name}"
    )
    with (
        pinned(place.client),
        certificates() as certs,
        http_server(certs, place.server) as port,
        contextlib.ExitStack() as stack,
    ):
        setups = [Setup(kind, certs, port, stack) for kind in KINDS]
        otel = args.otel and otel_instrument(requests.Session())
        measures = {k: fn for s in setups for k, fn in s.measures.items()}
        interleave(measures, rounds=max(1, args.rounds // 20), batch=2, seed=args.seed + 1)
        t0 = time.monotonic()
        samples = interleave(measures, rounds=args.rounds, batch=args.batch, seed=args.seed)
        elapsed = time.monotonic() - t0
    all_met = True
    for s in setups:
        text, met = s.report(samples, otel)
        print(text)
        all_met = all_met and met
    print(f"  ({elapsed:.0f} s; budgets {'all met' if all_met else 'NOT all met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
