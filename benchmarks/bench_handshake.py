"""Full TLS handshakes on loopback: tlstiming against plain ``ssl``, interleaved.

Client: blocking ``wrap_socket`` over ``socket.create_connection``; only the
``wrap_socket`` call is timed (connect and close are not). Server: plain
stdlib in a separate process (``--server thread`` puts it in a thread of this
process instead, to show what sharing the GIL does to the ratio).

Variants, per TLS version:

``plain``
    ``ssl.create_default_context()``.
``floor``
    the same with a bare C-level message callback that appends one timestamp
    per call: the least any message-callback instrumentation can cost.
``tlstiming``
    ``tlstiming.create_default_context()`` with a ``SpanRecorder(maxlen=100)``
    sink: a bounded sink in its steady state, where each new span pushes out
    an old one, as a service's sink would be (a sink that keeps every span
    forever also pays for growing memory; ``--keep`` sets the bound).
``tlstiming+phases``
    the same, the sink also reading ``span.phases`` (lazy materialisation).
``pure Python``
    ``tlstiming`` recording through the pure-Python hot path instead of the
    C accelerator (``tlstiming._recording._speedups``): what the accelerator saves.
``native``
    ``tlstiming`` with native hooks on OpenSSL (``implementation() == "native"``,
    the default where possible): OpenSSL calls a C callback, no Python per
    message. Switched on only around its own handshakes: ``tlstiming``,
    ``tlstiming+phases`` and ``pure Python`` run on the callback path (what
    ``TLSTIMING_NO_NATIVE=1`` gives) in the same run. Absent where native
    hooks are not possible.
``native, no sink``
    the same with no sink at all: the recording and the span, not delivery.

Budgets: the callback path against the floor (issue #2: c/a <= 1.03 and
<= 1 pp over the floor); native hooks (issue #13): with spans delivered to
the bounded recorder <= 1.01, with no sink <= 1.005. The client CPU that
tlstiming adds per handshake is printed in microseconds (median of the
per-round CPU medians' difference against plain).
"""

from __future__ import annotations

import argparse
import contextlib
import ssl
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Final

from _common import (
    CPU,
    HOSTNAME,
    PLACEMENTS,
    Certs,
    Placement,
    Ratio,
    Sample,
    Samples,
    callback_context,
    certificates,
    connect,
    environment,
    floor_callback,
    interleave,
    median_ns,
    pinned,
    placement,
    plain_context,
    pure_python_context,
    ratio,
    server_process,
    server_thread,
    table,
    timed_context,
)

import tlstiming
from tlstiming._recording import conn as _conn
from tlstiming._recording import native as _native

BUDGET_RATIO: Final = 1.03
BUDGET_PP: Final = 1.0
BUDGET_NATIVE: Final = 1.01
BUDGET_NATIVE_NO_SINK: Final = 1.005
VARIANTS: Final = (
    "plain",
    "floor",
    "tlstiming",
    "tlstiming+phases",
    "pure Python",
    "native",
    "native, no sink",
)

_perf = time.perf_counter_ns
_cpu = time.thread_time_ns


def measure(ctx: ssl.SSLContext, port: int, counts: list[int]) -> Callable[[], Sample]:
    """One handshake on a fresh connection: how long ``wrap_socket`` took (wall, CPU)."""

    def run() -> Sample:
        sock = connect(port)
        cpu = _cpu()
        start = _perf()
        tls = ctx.wrap_socket(sock, server_hostname=HOSTNAME)
        wall = _perf() - start
        cpu = _cpu() - cpu
        stamps = tls.__dict__.get("_bench_stamps")
        if stamps is not None:
            counts.append(len(stamps))
        tls.recv(1)  # the server's "k": it is done with this connection
        tls.close()
        return wall, cpu

    return run


def native_possible() -> bool:
    """Whether native hooks can be used in this process."""
    if not _conn.ACCELERATED:
        return False
    from tlstiming._recording import _speedups

    return bool(_speedups.NATIVE_POSSIBLE) and _native.probe(_speedups) is None


def switched(run: Callable[[], Sample], native: bool) -> Callable[[], Sample]:
    """``run`` with native hooks on or off (switched outside the timed region), restored after."""

    def run_switched() -> Sample:
        was = _native.SWITCH.on
        _native.SWITCH.on = native
        try:
            return run()
        finally:
            _native.SWITCH.on = was

    return run_switched


def reading_phases(recorder: tlstiming.SpanRecorder) -> tlstiming.Sink[tlstiming.HandshakeSpan]:
    """A sink that keeps the span and reads its phases (materialising it)."""

    def sink(span: tlstiming.HandshakeSpan) -> None:
        recorder(span)
        _ = span.phases

    return sink


class Setup:
    """The client contexts of one TLS version, built once, outside the timed region."""

    def __init__(self, certs: Certs, port: int, version: str, keep: int = 100) -> None:
        self.version = version
        self.counts: list[int] = []
        self.recorders = tuple(tlstiming.SpanRecorder(keep) for _ in range(4))
        contexts = {
            "plain": plain_context(certs),
            "floor": callback_context(certs, floor_callback),
            "tlstiming": timed_context(certs, self.recorders[0]),
            "tlstiming+phases": timed_context(certs, reading_phases(self.recorders[1])),
            "pure Python": pure_python_context(certs, self.recorders[2]),
        }
        self.measures = {
            f"{version} {name}": switched(measure(ctx, port, self.counts), native=False)
            for name, ctx in contexts.items()
        }
        self.native = native_possible()
        if self.native:
            native = measure(timed_context(certs, self.recorders[3]), port, [])
            self.measures[f"{version} native"] = switched(native, native=True)
            bare = measure(timed_context(certs), port, [])
            self.measures[f"{version} native, no sink"] = switched(bare, native=True)
        self.check(contexts["plain"], port)

    def check(self, ctx: ssl.SSLContext, port: int) -> None:
        """Make sure the server speaks the version this setup is named after."""
        with ctx.wrap_socket(connect(port), server_hostname=HOSTNAME) as tls:
            if tls.version() != f"TLSv{self.version}":
                raise RuntimeError(f"expected TLS {self.version}, got {tls.version()}")
            tls.recv(1)

    def report(self, samples: Samples) -> tuple[str, bool]:
        """The table of this version's variants, and whether the budgets are met."""
        base = f"{self.version} plain"
        us = median_ns(samples, base) / 1e3
        rows = [[VARIANTS[0], f"{us:.1f}", "1", "", "1"]]
        ratios = {}
        for name in VARIANTS[1:]:
            key = f"{self.version} {name}"
            if key not in samples:
                continue
            r = ratios[name] = ratio(samples, key, base)
            cpu = ratio(samples, key, base, CPU)
            us = median_ns(samples, key) / 1e3
            rows.append([name, f"{us:.1f}", r.cell(), f"{r.pooled:.3f}", f"{cpu.median:.3f}"])
        recorders = self.recorders if self.native else self.recorders[:3]
        ok = all(len(rec) and all(s.outcome == "ok" for s in rec.spans) for rec in recorders)
        c, b, d = ratios["tlstiming"], ratios["floor"], ratios["tlstiming+phases"]
        e = ratios["pure Python"]
        pp = (c.median - b.median) * 100
        met_ratio, met_pp = c.median <= BUDGET_RATIO, pp <= BUDGET_PP
        native_lines, met_native = self._native_budgets(samples, ratios)
        headers = ["variant", "median us", "wall ratio [IQR]", "pooled", "cpu ratio"]
        lines = [
            f"TLS {self.version}: median of per-round ratios to plain [interquartile range]",
            table(headers, rows),
            f"  c/a = {c.median:.3f}  (budget <= {BUDGET_RATIO}: {verdict(met_ratio)})",
            f"  b/a = {b.median:.3f}  (the floor)",
            f"  c/a - b/a = {pp:+.2f} pp  (budget <= {BUDGET_PP:g} pp: {verdict(met_pp)})",
            f"  d/a = {d.median:.3f}, d/a - c/a = {(d.median - c.median) * 100:+.2f} pp"
            "  (reading span.phases in the sink)",
            f"  e/a = {e.median:.3f}, e/a - c/a = {(e.median - c.median) * 100:+.2f} pp"
            "  (the pure-Python hot path: what the C accelerator saves)",
            *native_lines,
            f"  message callbacks per handshake: {statistics.median(self.counts):g};"
            f" spans recorded, all ok: {ok}",
        ]
        return "\n".join(lines), met_ratio and met_pp and met_native and ok

    def _native_budgets(self, samples: Samples, ratios: dict[str, Ratio]) -> tuple[list[str], bool]:
        """The native rows' budgets and the client CPU each variant adds per handshake."""
        if "native" not in ratios:
            return ["  native hooks: not possible here"], True
        f, g, c = ratios["native"], ratios["native, no sink"], ratios["tlstiming"]
        base = median_ns(samples, f"{self.version} plain", CPU)
        added = {
            name: (median_ns(samples, f"{self.version} {name}", CPU) - base) / 1e3
            for name in ("floor", "tlstiming", "native", "native, no sink")
        }
        met_f, met_g = f.median <= BUDGET_NATIVE, g.median <= BUDGET_NATIVE_NO_SINK
        return [
            f"  f/a = {f.median:.3f}, f/a - c/a = {(f.median - c.median) * 100:+.2f} pp"
            f"  (native hooks, spans delivered; budget <= {BUDGET_NATIVE}: {verdict(met_f)})",
            f"  g/a = {g.median:.3f}  (native hooks, no sink; budget <= "
            f"{BUDGET_NATIVE_NO_SINK}: {verdict(met_g)})",
            "  client CPU added per handshake (us, median): "
            + ", ".join(f"{name} {us:+.1f}" for name, us in added.items()),
        ], met_f and met_g


def verdict(met: bool) -> str:
    """``met`` or ``NOT MET``."""
    return "met" if met else "NOT MET"


@contextlib.contextmanager
def servers(
    certs: Certs, where: str, place: Placement, versions: list[str]
) -> Iterator[dict[str, int]]:
    """One handshake server per TLS version; yields version -> port."""
    with contextlib.ExitStack() as stack:
        ports = {}
        for v in versions:
            if where == "thread":
                ports[v] = stack.enter_context(server_thread(certs, "handshake", v))
            else:
                ports[v] = stack.enter_context(server_process(certs, "handshake", v, place.server))
        yield ports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300, help="interleaved rounds")
    parser.add_argument("--batch", type=int, default=10, help="handshakes per variant per round")
    parser.add_argument("--quick", action="store_true", help="a few seconds: smoke test only")
    parser.add_argument("--server", choices=["process", "thread"], default="process")
    parser.add_argument("--placement", choices=PLACEMENTS, default="split", help="CPU pinning")
    parser.add_argument("--no-tls12", action="store_true", help="TLS 1.3 only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=int, default=100, help="the sink's SpanRecorder maxlen")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.batch = 10, 3
    versions = ["1.3"] if args.no_tls12 else ["1.3", "1.2"]
    place = placement(args.placement)
    print(f"bench_handshake: {environment()}")
    print(
        f"  {args.rounds} rounds x {args.batch} handshakes per variant; "
        f"server in a {args.server}; placement {place.name}"
    )
    with (
        pinned(place.client),
        certificates() as certs,
        servers(certs, args.server, place, versions) as ports,
    ):
        setups = [Setup(certs, ports[v], v, args.keep) for v in versions]
        measures = {k: fn for s in setups for k, fn in s.measures.items()}
        interleave(measures, rounds=max(1, args.rounds // 20), batch=2, seed=args.seed + 1)
        for s in setups:
            s.counts.clear()
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
