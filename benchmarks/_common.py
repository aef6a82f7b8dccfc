"""Shared helpers for the benchmarks: certificates, the server process, interleaving, stats.

Every benchmark compares variants *inside one process, interleaved*: each
round runs every variant (in a fresh random order) before the next round
starts, so a slow second of the machine hits all variants alike. Only ratios
between variants of the same round are reported, never absolute times
across runs.
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import trustme

import tlstiming
from tlstiming._recording import conn as _conn
from tlstiming._recording.connections import TimedSSLSocket

HERE: Final = Path(__file__).resolve().parent
SERVER_SCRIPT: Final = HERE / "_server.py"
HOSTNAME: Final = "localhost"

_C_MSG_CALLBACK: Any = ssl._SSLContext._msg_callback  # type: ignore[attr-defined]
_perf = time.perf_counter_ns


# -- certificates and the server process ----------------------------------------


@dataclass(frozen=True, slots=True)
class Certs:
    """Paths of a throwaway trustme CA and a ``localhost`` server certificate."""

    ca_pem: str
    certchain: str


@contextlib.contextmanager
def certificates() -> Iterator[Certs]:
    """Write a fresh CA and server certificate (trustme's default: ECDSA P-256) to a temp dir."""
    ca = trustme.CA()
    cert = ca.issue_cert(HOSTNAME)
    with tempfile.TemporaryDirectory(prefix="tlstiming-bench-") as tmp:
        ca_pem = os.path.join(tmp, "ca.pem")
        certchain = os.path.join(tmp, "server.pem")
        ca.cert_pem.write_to_path(ca_pem)
        cert.private_key_and_cert_chain_pem.write_to_path(certchain)
        yield Certs(ca_pem=ca_pem, certchain=certchain)


@contextlib.contextmanager
def server_process(
    certs: Certs, mode: str, max_tls: str = "1.3", cpu: int | None = None
) -> Iterator[int]:
    """Run ``_server.py`` in its own process on 127.0.0.1 (pinned to ``cpu``); yield its port."""
    command = [sys.executable, str(SERVER_SCRIPT), "--mode", mode]
    command += ["--certchain", certs.certchain, "--max-tls", max_tls]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    if cpu is not None:
        os.sched_setaffinity(proc.pid, {cpu})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.strip():
            raise RuntimeError(f"benchmark server did not start (exit code {proc.wait()})")
        yield int(line)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def connect(port: int) -> socket.socket:
    """A TCP connection to the server; closing it resets (no TIME_WAIT pile-up)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return sock


# -- client contexts -------------------------------------------------------------


def plain_context(certs: Certs) -> ssl.SSLContext:
    """``ssl.create_default_context()`` trusting the benchmark CA."""
    return ssl.create_default_context(cafile=certs.ca_pem)


def floor_callback(
    conn: Any, direction: str, version: int, content_type: int, msg_type: int, data: bytes, /
) -> None:
    """The cheapest useful message callback: one timestamp appended per call."""
    try:
        conn._bench_stamps.append(_perf())
    except AttributeError:
        conn._bench_stamps = [_perf()]


def noop_callback(
    conn: Any, direction: str, version: int, content_type: int, msg_type: int, data: bytes, /
) -> None:
    """A message callback that does nothing: the price of any Python callback at all."""


def callback_context(certs: Certs, callback: Callable[..., None]) -> ssl.SSLContext:
    """A plain context with ``callback`` set at the C level (no enum-converting wrapper)."""
    ctx = plain_context(certs)
    _C_MSG_CALLBACK.__set__(ctx, callback)
    return ctx


def timed_context(
    certs: Certs, sink: tlstiming.Sink[tlstiming.HandshakeSpan] | None = None
) -> tlstiming.TimedSSLContext:
    """``tlstiming.create_default_context()`` trusting the benchmark CA, with ``sink`` added."""
    ctx = tlstiming.create_default_context(cafile=certs.ca_pem)
    if sink is not None:
        ctx.add_sink(sink)
    return ctx


def hot_path_context(
    certs: Certs, sink: tlstiming.Sink[tlstiming.HandshakeSpan] | None, on_message: Any, drive: Any
) -> tlstiming.TimedSSLContext:
    """:func:`timed_context` recording through the given hot path (private seams).

    ``on_message`` and ``drive`` are a pair from ``tlstiming._recording.conn`` (pure
    Python) or from a build of ``_speedups.c``: one process can then compare
    implementations, interleaved.
    """

    class Socket(TimedSSLSocket):
        def do_handshake(self, block: bool = False) -> None:
            drive(self, super(TimedSSLSocket, self).do_handshake, block)

    ctx = timed_context(certs, sink)
    _C_MSG_CALLBACK.__set__(ctx, on_message)
    ctx.sslsocket_class = Socket
    return ctx


def pure_python_context(
    certs: Certs, sink: tlstiming.Sink[tlstiming.HandshakeSpan] | None = None
) -> tlstiming.TimedSSLContext:
    """:func:`timed_context` recording with the pure-Python hot path."""
    return hot_path_context(certs, sink, _conn._py_on_message, _conn._py_drive)


# -- interleaving and statistics -------------------------------------------------

Sample = tuple[int, int]
"""One measurement: (wall ns from ``perf_counter_ns``, this thread's CPU ns)."""
Samples = dict[str, list[list[Sample]]]
WALL: Final = 0
CPU: Final = 1


def interleave(
    measures: Mapping[str, Callable[[], Sample]],
    rounds: int,
    batch: int = 1,
    seed: int = 0,
) -> Samples:
    """Run every measure ``batch`` times per round, variants in random order each time.

    Args:
        measures: name -> a function that takes one sample.
        rounds: how many rounds.
        batch: samples per variant per round (the order is reshuffled for each).
        seed: seed of the shuffling.

    Returns:
        name -> one list of samples per round.
    """
    rng = random.Random(seed)
    names = list(measures)
    samples: Samples = {name: [] for name in names}
    for _ in range(rounds):
        for name in names:
            samples[name].append([])
        for _ in range(batch):
            rng.shuffle(names)
            for name in names:
                samples[name][-1].append(measures[name]())
    return samples


@dataclass(frozen=True, slots=True)
class Ratio:
    """Summary of per-round ratios variant/baseline.

    Attributes:
        median: median of the per-round ratios.
        q1: first quartile of the per-round ratios.
        q3: third quartile.
        pooled: median of all the variant's samples / median of all the baseline's.
    """

    median: float
    q1: float
    q3: float
    pooled: float

    def cell(self) -> str:
        """``1.012 [1.004, 1.020]``: median and interquartile range."""
        return f"{self.median:.3f} [{self.q1:.3f}, {self.q3:.3f}]"


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """First quartile, median, third quartile."""
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def _median(samples: list[Sample], metric: int) -> float:
    return statistics.median(s[metric] for s in samples)


def ratio(samples: Samples, variant: str, baseline: str, metric: int = WALL) -> Ratio:
    """Compare ``variant`` with ``baseline`` round by round (ratio of round medians)."""
    per_round = [
        _median(v, metric) / _median(b, metric)
        for v, b in zip(samples[variant], samples[baseline], strict=True)
    ]
    q1, q2, q3 = quartiles(per_round)
    pooled_v = median_ns(samples, variant, metric)
    pooled_b = median_ns(samples, baseline, metric)
    return Ratio(median=q2, q1=q1, q3=q3, pooled=pooled_v / pooled_b)


def median_ns(samples: Samples, variant: str, metric: int = WALL) -> float:
    """Median of all of a variant's samples (for orientation only: absolute times vary)."""
    return statistics.median(s[metric] for r in samples[variant] for s in r)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain text table, first column left-aligned, the others right-aligned."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, ["-" * w for w in widths], *rows]:
        cells = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def environment() -> str:
    """One line naming the interpreter, OpenSSL, the CPUs and tlstiming's hot path."""
    return (
        f"Python {platform.python_version()}, {ssl.OPENSSL_VERSION}, "
        f"{os.cpu_count()} CPUs, tlstiming {tlstiming.__version__} "
        f"({'C accelerator' if _conn.ACCELERATED else 'pure Python'})"
    )


def rss_bytes() -> int:
    """Resident set size of this process, from /proc/self/statm (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextlib.contextmanager
def server_thread(certs: Certs, mode: str, max_tls: str = "1.3") -> Iterator[int]:
    """The same server as :func:`server_process`, in a daemon thread of this process.

    Only for comparison: the server then shares this process's GIL with the
    client being measured.
    """
    import threading

    import _server

    ctx = _server.server_context(certs.certchain, max_tls)
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    serve = _server.serve_handshakes if mode == "handshake" else _server.serve_data
    threading.Thread(target=serve, args=(listener, ctx), daemon=True).start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()


# -- CPU placement ----------------------------------------------------------------

PLACEMENTS: Final = ("split", "shared", "free")
"""split: client and server on two CPUs; shared: both on one; free: the scheduler's choice."""


@dataclass(frozen=True, slots=True)
class Placement:
    """Which CPU the client (this process) and the server process run on (``None``: any)."""

    name: str
    client: int | None
    server: int | None


def placement(name: str) -> Placement:
    """Resolve a placement name against the CPUs this process may use."""
    allowed = sorted(os.sched_getaffinity(0))
    if name == "free" or (len(allowed) < 2 and name == "split"):
        return Placement("free", None, None)
    if name == "shared":
        return Placement(name, allowed[0], allowed[0])
    return Placement(name, allowed[0], allowed[1])


@contextlib.contextmanager
def pinned(cpu: int | None) -> Iterator[None]:
    """Run this process on ``cpu`` only, restoring its affinity afterwards."""
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def dropping_tracer_provider() -> Any:
    """An OpenTelemetry SDK tracer provider that builds spans and drops them; None without the SDK.

    For the rows that compare a client's own OpenTelemetry instrumentation.
    """
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            SimpleSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )
    except ImportError:
        return None

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Drop()))
    return provider
