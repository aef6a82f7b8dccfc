"""aiohttp requests on loopback, and anyio's TLS connect: tlstiming against plain.

Client: one ``session.get`` of a 2-byte response, body read, timed inside the
event loop (wall and client-thread CPU). Server: ``_http_server.py``, plain
stdlib HTTP/1.1 over TLS 1.3, in a separate process. Kinds, interleaved in
the same rounds:

``fresh``
    every request opens a new connection (``TCPConnector(force_close=True)``).
``keepalive``
    every request reuses one pooled connection.
``anyio``
    ``anyio.connect_tcp(..., tls=True)`` then a forced close: no HTTP. anyio
    calls ``wrap_bio`` in a worker thread for any context whose type is not
    exactly ``ssl.SSLContext``; ``subclass`` (an empty ``ssl.SSLContext``
    subclass) measures that thread hop alone.

Variants: ``plain`` (``aiohttp.ClientSession`` over
``TCPConnector(ssl=ssl.create_default_context(...))``; for anyio a plain
context), ``tlstiming`` (``tlstiming.aiohttp.ClientSession`` with a
``tlstiming.create_default_context()`` context, request spans delivered to a
bounded deque; for anyio a ``TimedSSLContext``), ``context only`` (plain
aiohttp given the timed context: handshake spans alone).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import ssl
import sys
import time
from collections.abc import Callable
from typing import Any, Final

import aiohttp
import anyio
from _common import (
    CPU,
    PLACEMENTS,
    Certs,
    Sample,
    Samples,
    certificates,
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
import tlstiming.aiohttp

KINDS: Final = ("fresh", "keepalive", "anyio")
_perf = time.perf_counter_ns
_cpu = time.thread_time_ns


class _Subclass(ssl.SSLContext):
    """Not exactly ``ssl.SSLContext``: anyio hops to a thread to wrap with it."""


def _contexts(certs: Certs) -> dict[str, ssl.SSLContext]:
    sub = _Subclass(ssl.PROTOCOL_TLS_CLIENT)
    sub.load_verify_locations(certs.ca_pem)
    return {
        "plain": ssl.create_default_context(cafile=certs.ca_pem),
        "subclass": sub,
        "tlstiming": tlstiming.create_default_context(cafile=certs.ca_pem),
    }


async def _sessions(kind: str, certs: Certs, spans: collections.deque[Any]) -> dict[str, Any]:
    """Built in the loop (aiohttp's connectors need a running one)."""
    options: dict[str, Any] = {"force_close": kind == "fresh", "limit": 10}
    timed_ctx = tlstiming.create_default_context(cafile=certs.ca_pem)
    plain_ctx = ssl.create_default_context(cafile=certs.ca_pem)
    return {
        "plain": aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=plain_ctx, **options)),
        "tlstiming": tlstiming.aiohttp.ClientSession(
            ssl=timed_ctx, sinks=[spans.append], connector_options=options
        ),
        "context only": aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=timed_ctx, **options)
        ),
    }


def _timed(loop: asyncio.AbstractEventLoop, once: Callable[[], Any]) -> Callable[[], Sample]:
    async def sample() -> Sample:
        cpu = _cpu()
        start = _perf()
        await once()
        wall = _perf() - start
        return wall, _cpu() - cpu

    return lambda: loop.run_until_complete(sample())


def _get(session: aiohttp.ClientSession, url: str) -> Callable[[], Any]:
    async def once() -> None:
        async with session.get(url) as response:
            await response.read()

    return once


def _tls_connect(port: int, context: ssl.SSLContext) -> Callable[[], Any]:
    async def once() -> None:
        stream = await anyio.connect_tcp("localhost", port, tls=True, ssl_context=context)
        await anyio.aclose_forcefully(stream)

    return once


def report(kind: str, variants: list[str], samples: Samples, spans: int) -> str:
    base = f"{kind} plain"
    rows = [["plain", f"{median_ns(samples, base) / 1e3:.1f}", "1", "", "1"]]
    for name in variants[1:]:
        key = f"{kind} {name}"
        r = ratio(samples, key, base)
        cpu = ratio(samples, key, base, CPU)
        us = median_ns(samples, key) / 1e3
        rows.append([name, f"{us:.1f}", r.cell(), f"{r.pooled:.3f}", f"{cpu.median:.3f}"])
    headers = ["variant", "median us", "wall ratio [IQR]", "pooled", "cpu ratio"]
    lines = [f"{kind}: median of per-round ratios to plain [interquartile range]"]
    lines.append(table(headers, rows))
    if kind != "anyio":
        lines.append(f"  request spans kept: {spans}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100, help="interleaved rounds")
    parser.add_argument("--batch", type=int, default=20, help="requests per variant per round")
    parser.add_argument("--quick", action="store_true", help="a few seconds: smoke test only")
    parser.add_argument("--placement", choices=PLACEMENTS, default="split", help="CPU pinning")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.batch = 10, 3
    place = placement(args.placement)
    print(f"bench_aiohttp: {environment()}, aiohttp {aiohttp.__version__}")
    print(f"  {args.rounds} rounds x {args.batch} per variant; placement {place.name}")
    loop = asyncio.new_event_loop()
    spans: dict[str, collections.deque[Any]] = {k: collections.deque(maxlen=1000) for k in KINDS}
    with pinned(place.client), certificates() as certs, http_server(certs, place.server) as port:
        url = f"https://localhost:{port}/"
        measures: dict[str, Callable[[], Sample]] = {}
        variants: dict[str, list[str]] = {}
        sessions: list[aiohttp.ClientSession] = []
        for kind in KINDS[:2]:
            made = loop.run_until_complete(_sessions(kind, certs, spans[kind]))
            sessions += made.values()
            variants[kind] = list(made)
            for name, s in made.items():
                measures[f"{kind} {name}"] = _timed(loop, _get(s, url))
        contexts = _contexts(certs)
        variants["anyio"] = list(contexts)
        for name, c in contexts.items():
            measures[f"anyio {name}"] = _timed(loop, _tls_connect(port, c))
        interleave(measures, rounds=max(1, args.rounds // 20), batch=2, seed=args.seed + 1)
        samples = interleave(measures, rounds=args.rounds, batch=args.batch, seed=args.seed)
        for session in sessions:
            loop.run_until_complete(session.close())
    loop.close()
    for kind in KINDS:
        print(report(kind, variants[kind], samples, len(spans[kind])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
