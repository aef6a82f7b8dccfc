"""The data path of established connections: tlstiming against plain ``ssl``, interleaved.

One connection per variant is opened before timing starts (handshakes are
not timed) and reused for every round. Two workloads:

``bulk``
    read ``--megabytes`` MB that the server (a separate process) sends as
    fast as it can; ``recv_into`` a 256 KiB buffer.
``small``
    ``--exchanges`` round trips of a 64-byte write and a 64-byte read.

Variants: ``plain``; ``tlstiming`` (OpenSSL stops calling back for the
connection after the handshake; ``tests/test_data_path.py`` proves it by
counting calls); ``naive`` (a bare timestamp-appending callback left
attached: what the detach saves); ``noop`` (a callback that does nothing,
left attached: the price of any Python callback). TLS 1.2 is shown with
default options and with ``ssl.OP_NO_RENEGOTIATION``.
"""

from __future__ import annotations

import argparse
import contextlib
import ssl
import sys
import time
from collections.abc import Callable, Iterator
from typing import Final

from _common import (
    CPU,
    HOSTNAME,
    PLACEMENTS,
    Certs,
    Sample,
    Samples,
    callback_context,
    certificates,
    connect,
    environment,
    floor_callback,
    interleave,
    median_ns,
    noop_callback,
    pinned,
    placement,
    plain_context,
    ratio,
    server_process,
    table,
    timed_context,
)

BUDGET: Final = 1.01
VERSIONS: Final = ("1.3", "1.2")
ECHO_SIZE: Final = 64
_perf = time.perf_counter_ns
_cpu = time.thread_time_ns


def bulk(tls: ssl.SSLSocket, nbytes: int) -> Callable[[], Sample]:
    """Ask for ``nbytes`` and time reading them all."""
    buf = memoryview(bytearray(256 * 1024))
    request = b"B" + nbytes.to_bytes(8, "big")

    def run() -> Sample:
        tls.sendall(request)
        left = nbytes
        cpu = _cpu()
        start = _perf()
        while left:
            n = tls.recv_into(buf)
            if not n:
                raise ConnectionError("server closed during bulk transfer")
            left -= n
        wall = _perf() - start
        return wall, _cpu() - cpu

    return run


def small(tls: ssl.SSLSocket, exchanges: int) -> Callable[[], Sample]:
    """Time ``exchanges`` round trips of 64 bytes each way."""
    message = bytes(range(ECHO_SIZE))
    request = b"E" + exchanges.to_bytes(8, "big")
    buf = memoryview(bytearray(ECHO_SIZE))

    def run() -> Sample:
        tls.sendall(request)
        cpu = _cpu()
        start = _perf()
        for _ in range(exchanges):
            tls.sendall(message)
            got = 0
            while got < ECHO_SIZE:
                n = tls.recv_into(buf[got:])
                if not n:
                    raise ConnectionError("server closed during echo")
                got += n
        wall = _perf() - start
        return wall, _cpu() - cpu

    return run


def contexts(certs: Certs) -> dict[str, tuple[str, ssl.SSLContext]]:
    """name -> (TLS version of the server to use, client context)."""
    no_reneg = timed_context(certs)
    no_reneg.options |= ssl.OP_NO_RENEGOTIATION
    return {
        "1.3 plain": ("1.3", plain_context(certs)),
        "1.3 tlstiming": ("1.3", timed_context(certs)),
        "1.3 naive": ("1.3", callback_context(certs, floor_callback)),
        "1.3 noop": ("1.3", callback_context(certs, noop_callback)),
        "1.2 plain": ("1.2", plain_context(certs)),
        "1.2 tlstiming": ("1.2", timed_context(certs)),
        "1.2 tlstiming+no_reneg": ("1.2", no_reneg),
    }


def attached(name: str) -> bool:
    """Whether the variant keeps a Python callback on the data path (by construction)."""
    return name.endswith(("naive", "noop"))


@contextlib.contextmanager
def connections(certs: Certs, ports: dict[str, int]) -> Iterator[dict[str, ssl.SSLSocket]]:
    """One established connection per variant; closed on exit."""
    with contextlib.ExitStack() as stack:
        out = {}
        for name, (version, ctx) in contexts(certs).items():
            tls = ctx.wrap_socket(connect(ports[version]), server_hostname=HOSTNAME)
            stack.enter_context(tls)
            if tls.version() != f"TLSv{version}":
                raise RuntimeError(f"{name}: expected TLS {version}, got {tls.version()}")
            out[name] = tls
        yield out


def report(samples: Samples, conns: dict[str, ssl.SSLSocket], kind: str, unit: str) -> bool:
    """Print one workload's table; return whether the budget is met."""
    rows, met = [], True
    for name in conns:
        version = name.split()[0]
        base, key = f"{kind} {version} plain", f"{kind} {name}"
        t = median_ns(samples, key) / 1e6
        row = [name, f"{t:.1f}", "yes" if attached(name) else "no"]
        if key == base:
            rows.append([*row, "1", "", "1"])
            continue
        r = ratio(samples, key, base)
        cpu = ratio(samples, key, base, CPU)
        rows.append([*row, r.cell(), f"{r.pooled:.3f}", f"{cpu.median:.3f}"])
        if "tlstiming" in name:
            met = met and r.median <= BUDGET
    print(f"{kind}: {unit}; median of per-round ratios to plain of the same version [IQR]")
    headers = ["variant", "ms/piece", "callback", "wall ratio [IQR]", "pooled", "cpu ratio"]
    print(table(headers, rows))
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60, help="interleaved rounds")
    parser.add_argument("--megabytes", type=int, default=32, help="bulk read per variant per round")
    parser.add_argument("--exchanges", type=int, default=2000, help="round trips per round")
    parser.add_argument("--chunks", type=int, default=8, help="interleaved pieces per round")
    parser.add_argument(
        "--placement",
        choices=["auto", *PLACEMENTS],
        default="auto",
        help="CPU pinning; auto: bulk split, small shared",
    )
    parser.add_argument("--quick", action="store_true", help="a few seconds: smoke test only")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.megabytes, args.exchanges, args.chunks = 5, 4, 200, 2
    places = {
        kind: placement(default if args.placement == "auto" else args.placement)
        for kind, default in (("bulk", "split"), ("small", "shared"))
    }
    print(f"bench_datapath: {environment()}")
    print(
        f"  {args.rounds} rounds; per variant per round: bulk {args.megabytes} MB, small "
        f"{args.exchanges} x {ECHO_SIZE} B each way, in {args.chunks} interleaved pieces; "
        "server in a separate process; placement "
        + ", ".join(f"{kind} {p.name}" for kind, p in places.items())
    )
    workloads: dict[str, Callable[[ssl.SSLSocket], Callable[[], Sample]]] = {
        "bulk": lambda tls: bulk(tls, (args.megabytes << 20) // args.chunks),
        "small": lambda tls: small(tls, args.exchanges // args.chunks),
    }
    with (
        pinned(places["bulk"].client),
        certificates() as certs,
        contextlib.ExitStack() as stack,
    ):
        conns: dict[str, dict[str, ssl.SSLSocket]] = {}
        measures: dict[str, Callable[[], Sample]] = {}
        for kind, make in workloads.items():
            cpu = places[kind].server
            ports = {
                v: stack.enter_context(server_process(certs, "data", v, cpu)) for v in VERSIONS
            }
            conns[kind] = stack.enter_context(connections(certs, ports))
            for name, tls in conns[kind].items():
                measures[f"{kind} {name}"] = make(tls)
        interleave(measures, rounds=1, seed=args.seed + 1)  # warm-up
        t0 = time.monotonic()
        samples = interleave(measures, rounds=args.rounds, batch=args.chunks, seed=args.seed)
        elapsed = time.monotonic() - t0
        piece = f"median of {args.chunks} pieces"
        met = report(samples, conns["bulk"], "bulk", f"read {args.megabytes} MB per round, {piece}")
        met = (
            report(samples, conns["small"], "small", f"{args.exchanges} round trips, {piece}")
            and met
        )
    print(
        f"  budget: every tlstiming row <= {BUDGET} "
        f"(both workloads): {'met' if met else 'NOT MET'}  ({elapsed:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
