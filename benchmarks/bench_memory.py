"""Memory: bytes a kept span retains, and RSS over many handshakes with a bounded recorder.

1. ``tracemalloc``: make N handshakes through a TimedSSLContext whose
   ``SpanRecorder`` keeps all N spans; the Python memory still allocated
   afterwards, divided by N, is what one kept span costs. Measured again
   after reading ``span.phases`` and ``span.facts`` of every span
   (materialisation drops the raw event bytes). A plain context making the
   same handshakes is the control (it should retain nothing).
2. RSS (``/proc/self/statm``) every 1,000 handshakes over 10,000, with a
   ``SpanRecorder(maxlen=100)`` sink: memory must stay flat.
"""

from __future__ import annotations

import argparse
import gc
import ssl
import sys
import time
import tracemalloc
from collections.abc import Callable

from _common import (
    HOSTNAME,
    PLACEMENTS,
    Certs,
    certificates,
    connect,
    environment,
    pinned,
    placement,
    plain_context,
    rss_bytes,
    server_process,
    table,
    timed_context,
)

import tlstiming

FLAT_BYTES_PER_HANDSHAKE = 16
"""RSS growth per handshake (2,000 -> last sample) above which memory is not called flat."""


def handshaker(ctx: ssl.SSLContext, port: int) -> Callable[[], None]:
    """One complete handshake and close, on a fresh connection."""

    def run() -> None:
        with ctx.wrap_socket(connect(port), server_hostname=HOSTNAME) as tls:
            tls.recv(1)

    return run


def traced_now() -> int:
    """Python memory currently allocated (tracemalloc), after a full collection."""
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def retained(certs: Certs, port: int, n: int) -> list[list[str]]:
    """Rows: bytes retained per kept span, raw and materialised, and the plain control."""
    recorder = tlstiming.SpanRecorder(maxlen=n)
    timed = handshaker(timed_context(certs, recorder), port)
    plain = handshaker(plain_context(certs), port)
    for _ in range(20):  # warm caches and imports
        timed()
        plain()
    recorder.clear()
    tracemalloc.start()
    try:
        base = traced_now()
        for _ in range(n):
            plain()
        after_plain = traced_now()
        for _ in range(n):
            timed()
        after_raw = traced_now()
        for span in recorder.spans:
            _ = span.phases, span.facts
        after_read = traced_now()
    finally:
        tracemalloc.stop()
    if len(recorder) != n:
        raise RuntimeError(f"expected {n} spans, recorder has {len(recorder)}")
    return [
        ["plain ssl (control), per handshake", f"{(after_plain - base) / n:.0f}"],
        ["kept span, as delivered", f"{(after_raw - after_plain) / n:.0f}"],
        ["kept span, after phases + facts", f"{(after_read - after_plain) / n:.0f}"],
    ]


def rss_series(certs: Certs, port: int, total: int, every: int) -> list[tuple[int, int]]:
    """(handshakes so far, RSS bytes) every ``every`` handshakes, recorder bounded at 100."""
    recorder = tlstiming.SpanRecorder(maxlen=100)
    run = handshaker(timed_context(certs, recorder), port)
    series = [(0, rss_bytes())]
    for done in range(1, total + 1):
        run()
        if done % every == 0:
            series.append((done, rss_bytes()))
    return series


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1000, help="spans kept for tracemalloc")
    parser.add_argument("--handshakes", type=int, default=10_000, help="for the RSS series")
    parser.add_argument("--every", type=int, default=1000, help="RSS sampling interval")
    parser.add_argument("--placement", choices=PLACEMENTS, default="split", help="CPU pinning")
    parser.add_argument("--quick", action="store_true", help="a few seconds: smoke test only")
    args = parser.parse_args(argv)
    if args.quick:
        args.spans, args.handshakes, args.every = 100, 1000, 200
    place = placement(args.placement)
    print(f"bench_memory: {environment()}")
    t0 = time.monotonic()
    with (
        pinned(place.client),
        certificates() as certs,
        server_process(certs, "handshake", "1.3", place.server) as port,
    ):
        rows = retained(certs, port, args.spans)
        series = rss_series(certs, port, args.handshakes, args.every)
    print(f"retained Python memory (tracemalloc), {args.spans} TLS 1.3 spans kept:")
    print(table(["what", "bytes each"], rows))
    print(f"RSS with SpanRecorder(maxlen=100), {args.handshakes} TLS 1.3 handshakes:")
    print(table(["handshakes", "RSS KiB"], [[str(d), f"{r / 1024:.0f}"] for d, r in series]))
    start = next((r for d, r in series if d >= 2 * args.every), series[0][1])
    done, end = series[-1]
    growth = end - start
    per = growth / max(1, done - 2 * args.every)
    flat = per <= FLAT_BYTES_PER_HANDSHAKE
    print(
        f"  growth from {2 * args.every} to {done} handshakes: {growth / 1024:+.0f} KiB "
        f"({per:+.1f} B per handshake): {'flat' if flat else 'NOT FLAT'}"
        f"  ({time.monotonic() - t0:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
