"""httpx requests on loopback: tlstiming.httpx and OpenTelemetry against plain httpx.

Client: ``httpx.Client.get`` of a 2-byte response, timed as a whole (wall and
client-thread CPU). Server: ``_http_server.py``, plain stdlib HTTP/1.1 over
TLS 1.3, in a separate process. Two kinds of request, interleaved in the
same rounds:

``fresh``
    every request opens a new connection (``max_keepalive_connections=0``):
    DNS (``localhost``), TCP connect, TLS handshake, request, close.
``keepalive``
    every request reuses one pooled connection.

Variants per kind:

``plain``
    ``httpx.Client(verify=ssl.create_default_context(...))``.
``tlstiming``
    ``tlstiming.httpx.Client`` with a ``tlstiming.create_default_context()``
    context, request spans delivered to a bounded deque (handshake spans are
    built too).
``context only``
    plain ``httpx.HTTPTransport`` given a ``tlstiming.create_default_context()``
    context: the handshake spans alone, no request spans (what the transport
    adds is ``tlstiming`` minus this).
``otel``
    plain httpx instrumented by ``opentelemetry-instrumentation-httpx``
    (``instrument_client``) with an SDK ``TracerProvider`` whose processor
    hands every span to an exporter that drops it. Skipped if not installed.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import httpx
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

import tlstiming
import tlstiming.httpx

HERE: Final = Path(__file__).resolve().parent
BUDGETS: Final = {"fresh": 1.03, "keepalive": 1.01}
KINDS: Final = ("fresh", "keepalive")

_perf = time.perf_counter_ns
_cpu = time.thread_time_ns
# Close with a reset: no TIME_WAIT pile-up over thousands of fresh connections.
_LINGER: Final = [(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))]


@contextlib.contextmanager
def http_server(certs: Certs, cpu: int | None) -> Iterator[int]:
    """Run ``_http_server.py`` in its own process (pinned to ``cpu``); yield its port."""
    command = [sys.executable, str(HERE / "_http_server.py"), "--certchain", certs.certchain]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    if cpu is not None:
        import os

        os.sched_setaffinity(proc.pid, {cpu})
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def otel_instrument(client: httpx.Client) -> bool:
    """Instrument ``client`` with OpenTelemetry, spans built and dropped; False if unavailable."""
    try:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    except ImportError:
        return False
    provider = dropping_tracer_provider()
    if provider is None:
        return False
    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider)
    return True


def measure(client: httpx.Client, url: str) -> Callable[[], Sample]:
    """One ``client.get(url)``: (wall ns, CPU ns)."""

    def run() -> Sample:
        cpu = _cpu()
        start = _perf()
        client.get(url)
        wall = _perf() - start
        return wall, _cpu() - cpu

    return run


class Setup:
    """The clients of one kind of request, built once, outside the timed region."""

    def __init__(self, kind: str, certs: Certs, port: int, stack: contextlib.ExitStack) -> None:
        self.kind = kind
        self.spans: collections.deque[Any] = collections.deque(maxlen=1000)
        keep = 0 if kind == "fresh" else 20
        limits = httpx.Limits(max_connections=10, max_keepalive_connections=keep)
        url = f"https://localhost:{port}/"
        plain = httpx.Client(
            transport=httpx.HTTPTransport(
                verify=ssl.create_default_context(cafile=certs.ca_pem),
                limits=limits,
                socket_options=_LINGER,
            )
        )
        timed = httpx.Client(
            transport=tlstiming.httpx.TimedTransport(
                verify=tlstiming.create_default_context(cafile=certs.ca_pem),
                limits=limits,
                socket_options=_LINGER,
                sinks=[self.spans.append],
            )
        )
        context_only = httpx.Client(
            transport=httpx.HTTPTransport(
                verify=tlstiming.create_default_context(cafile=certs.ca_pem),
                limits=limits,
                socket_options=_LINGER,
            )
        )
        clients = {"plain": plain, "tlstiming": timed, "context only": context_only}
        otel = httpx.Client(
            transport=httpx.HTTPTransport(
                verify=ssl.create_default_context(cafile=certs.ca_pem),
                limits=limits,
                socket_options=_LINGER,
            )
        )
        if otel_instrument(otel):
            clients["otel"] = otel
        for client in (plain, timed, context_only, otel):
            stack.enter_context(client)
        self.variants = list(clients)
        self.measures = {f"{kind} {name}": measure(c, url) for name, c in clients.items()}

    def report(self, samples: Samples) -> tuple[str, bool]:
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
            f"{self.kind}: median of per-round ratios to plain [interquartile range]",
            table(["variant", "median us", "wall ratio [IQR]", "pooled", "cpu ratio"], rows),
            f"  tlstiming/plain = {ratios['tlstiming'].median:.3f}"
            f"  (budget <= {budget}: {'met' if met else 'NOT MET'});"
            f" spans kept: {len(self.spans)}, reused connections: {sorted(reused)}",
        ]
        if "otel" in ratios:
            lines.append(f"  otel/plain = {ratios['otel'].median:.3f}")
        else:
            lines.append("  otel: opentelemetry-instrumentation-httpx is not installed")
        return "\n".join(lines), met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="interleaved rounds")
    parser.add_argument("--batch", type=int, default=20, help="requests per variant per round")
    parser.add_argument("--quick", action="store_true", help="a few seconds: smoke test only")
    parser.add_argument("--placement", choices=PLACEMENTS, default="split", help="CPU pinning")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.batch = 10, 3
    place = placement(args.placement)
    print(f"bench_httpx: {environment()}, httpx {httpx.__version__}")
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
        measures = {k: fn for s in setups for k, fn in s.measures.items()}
        interleave(measures, rounds=max(1, args.rounds // 20), batch=2, seed=args.seed + 1)
        t0 = time.monotonic()
        samples = interleave(measures, rounds=args.rounds, batch=args.batch, seed=args.seed)
        elapsed = time.monotonic() - t0
    all_met = True
    for s in setups:
        text, met = s.report(samples)
        print(text)
        all_met = all_met and met
    print(f"  ({elapsed:.0f} s; budgets {'all met' if all_met else 'NOT all met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
