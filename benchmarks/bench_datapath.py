"""The data path of established connections: tlstiming against plain ``ssl``, interleaved.

One connection per variant is opened before timing starts (handshakes are
not timed) and reused for every round. Two workloads:

``bulk``
    read ``--megabytes`` MB that the server (a separate process) sends as
    fast as it can; ``recv_into`` a 256 KiB buffer.
``small``
    ``--exchanges`` round trips of a 64-byte write and a 64-byte read.

Variants: ``plain``; ``tlstiming`` (detached from the message callback after
the handshake); ``naive`` (a bare timestamp-appending callback left
attached: what the detach saves); ``noop`` (a callback that does nothing,
left attached: the price of any Python callback). With TLS 1.2 a
TimedSSLContext stays attached unless renegotiation is disabled
(``ssl.OP_NO_RENEGOTIATION``): both rows are shown.
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
    HOSTNAME,
    Certs,
    Samples,
    callback_context,
    certificates,
    connect,
    environment,
    floor_callback,
    interleave,
    median_ns,
    noop_callback,
    plain_context,
    ratio,
    server_process,
    table,
    timed_context,
)

BUDGET: Final = 1.01
ECHO_SIZE: Final = 64
_perf = time.perf_counter_ns


def bulk(tls: ssl.SSLSocket, nbytes: int) -> Callable[[], int]:
    """Ask for ``nbytes`` and time reading them all."""
    buf = memoryview(bytearray(256 * 1024))
    request = b"B" + nbytes.to_bytes(8, "big")

    def run() -> int:
        tls.sendall(request)
        left = nbytes
        start = _perf()
        while left:
            n = tls.recv_into(buf)
            if not n:
                raise ConnectionError("server closed during bulk transfer")
            left -= n
        return _perf() - start

    return run


def small(tls: ssl.SSLSocket, exchanges: int) -> Callable[[], int]:
    """Time ``exchanges`` round trips of 64 bytes each way."""
    message = bytes(range(ECHO_SIZE))
    request = b"E" + exchanges.to_bytes(8, "big")
    buf = memoryview(bytearray(ECHO_SIZE))

    def run() -> int:
        tls.sendall(request)
        start = _perf()
        for _ in range(exchanges):
            tls.sendall(message)
            got = 0
            while got < ECHO_SIZE:
                n = tls.recv_into(buf[got:])
                if not n:
                    raise ConnectionError("server closed during echo")
                got += n
        return _perf() - start

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


def attached(tls: ssl.SSLSocket) -> bool:
    """Whether the connection's current context has a message callback."""
    current = tls._sslobj.context  # type: ignore[attr-defined]
    return ssl._SSLContext._msg_callback.__get__(current) is not None  # type: ignore[attr-defined,no-any-return]


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
    for name, tls in conns.items():
        version = name.split()[0]
        base, key = f"{kind} {version} plain", f"{kind} {name}"
        t = median_ns(samples, key) / 1e6
        row = [name, f"{t:.1f}", "yes" if attached(tls) else "no"]
        if key == base:
            rows.append([*row, "1", ""])
            continue
        r = ratio(samples, key, base)
        rows.append([*row, r.cell(), f"{r.pooled:.3f}"])
        if name in {"1.3 tlstiming", "1.2 tlstiming+no_reneg"}:
            met = met and r.median <= BUDGET
    print(f"{kind}: {unit}; median of per-round ratios to plain of the same version [IQR]")
    print(table(["variant", "median ms", "callback", "ratio [IQR]", "pooled"], rows))
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60, help="interleaved rounds")
    parser.add_argument("--megabytes", type=int, default=32, help="bulk read size")
    parser.add_argument("--exchanges", type=int, default=2000, help="small round trips")
    parser.add_argument("--quick", action="store_true", help="a few seconds: smoke test only")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.megabytes, args.exchanges = 5, 4, 200
    print(f"bench_datapath: {environment()}")
    print(
        f"  {args.rounds} rounds; bulk {args.megabytes} MB, small {args.exchanges} x "
        f"{ECHO_SIZE} B each way; server in a separate process"
    )
    with certificates() as certs, contextlib.ExitStack() as stack:
        ports = {v: stack.enter_context(server_process(certs, "data", v)) for v in ("1.3", "1.2")}
        conns = stack.enter_context(connections(certs, ports))
        measures: dict[str, Callable[[], int]] = {}
        for name, tls in conns.items():
            measures[f"bulk {name}"] = bulk(tls, args.megabytes << 20)
            measures[f"small {name}"] = small(tls, args.exchanges)
        interleave(measures, rounds=1, seed=args.seed + 1)  # warm-up
        t0 = time.monotonic()
        samples = interleave(measures, rounds=args.rounds, seed=args.seed)
        elapsed = time.monotonic() - t0
        met = report(samples, conns, "bulk", f"read {args.megabytes} MB")
        met = report(samples, conns, "small", f"{args.exchanges} round trips") and met
    print(
        f"  budget: 1.3 tlstiming and 1.2 tlstiming+no_reneg <= {BUDGET} "
        f"(both workloads): {'met' if met else 'NOT MET'}  ({elapsed:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
