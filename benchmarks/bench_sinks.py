"""Handshakes with each log sink enabled, against plain ``ssl``, interleaved.

The same setup as ``bench_handshake.py`` (TLS 1.3, server in its own process,
only ``wrap_socket`` timed), with one sink per variant. Every sink writes for
real, to ``os.devnull`` or a temporary file, through a production-like
configuration:

``structlog``
    ``StructlogSink`` on a logger with ``TimeStamper`` + ``add_log_level`` +
    ``JSONRenderer`` printing to ``/dev/null``.
``logging``
    ``LoggingSink`` on a logger with a ``StreamHandler`` to ``/dev/null`` and
    a JSON formatter that copies the record's extra attributes (what
    python-json-logger does).
``otel``
    ``OTelSink`` on an SDK ``TracerProvider`` with a ``BatchSpanProcessor``
    and an exporter that discards (needs ``opentelemetry-sdk``).
``jsonl``
    ``JsonLinesSink`` appending to a temporary file, flushed per line.

Each runs twice: with ``background=False`` (the sink works on the handshake's
thread) and with its default worker (``+bg``): the handshake thread only
enqueues. After each ``+bg`` handshake the benchmark waits (untimed)
for the worker to finish that span, so the worker's work never lands inside
another variant's timed handshake: ``+bg`` rows show the cost on the
handshake's critical path, not the CPU the worker still spends (which is the
direct variant's extra cost, minus the enqueue).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from _common import (
    CPU,
    HOSTNAME,
    Certs,
    Sample,
    Samples,
    certificates,
    connect,
    environment,
    interleave,
    median_ns,
    pinned,
    placement,
    plain_context,
    ratio,
    server_process,
    table,
    timed_context,
)

import tlstiming
from tlstiming.sinks import JsonLinesSink, LoggingSink, StructlogSink
from tlstiming.sinks._common import Emitter

_perf = time.perf_counter_ns
_cpu = time.thread_time_ns
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """The message and every extra attribute as one JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        return json.dumps({"message": record.getMessage(), **fields})


def measure(ctx: Any, port: int, after: Callable[[], object] | None = None) -> Callable[[], Sample]:
    """One handshake on a fresh connection; ``after`` runs untimed once it is done."""

    def run() -> Sample:
        sock = connect(port)
        cpu = _cpu()
        start = _perf()
        tls = ctx.wrap_socket(sock, server_hostname=HOSTNAME)
        wall = _perf() - start
        cpu = _cpu() - cpu
        tls.recv(1)
        tls.close()
        if after is not None:
            after()
        return wall, cpu

    return run


@contextlib.contextmanager
def sinks(
    devnull: Any, directory: str
) -> Iterator[dict[str, tlstiming.Sink[tlstiming.HandshakeSpan]]]:
    """name -> a configured sink (closed on exit)."""
    import structlog

    made: dict[str, tlstiming.Sink[tlstiming.HandshakeSpan]] = {
        "tlstiming": tlstiming.SpanRecorder(1000)
    }
    slog = structlog.wrap_logger(
        structlog.PrintLogger(devnull),
        processors=[
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.add_log_level,
            structlog.processors.JSONRenderer(),
        ],
    )
    made["structlog"] = StructlogSink(slog, background=False)
    made["structlog+bg"] = StructlogSink(slog)
    handler = logging.StreamHandler(devnull)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("bench.tlstiming")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    made["logging"] = LoggingSink(logger, background=False)
    made["logging+bg"] = LoggingSink(logger)
    provider = _otel_provider()
    if provider is not None:
        from tlstiming.sinks.otel import OTelSink

        made["otel"] = OTelSink(tracer_provider=provider, background=False)
        made["otel+bg"] = OTelSink(tracer_provider=provider)
    made["jsonl"] = JsonLinesSink(os.path.join(directory, "spans.jsonl"), background=False)
    made["jsonl+bg"] = JsonLinesSink(os.path.join(directory, "spans-bg.jsonl"))
    try:
        yield made
    finally:
        for sink in made.values():
            if isinstance(sink, Emitter):
                sink.close()
        handler.close()
        if provider is not None:
            provider.shutdown()


def _otel_provider() -> Any:
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )
    except ImportError:
        print("  (opentelemetry-sdk not installed: no otel rows)")
        return None

    class Discard(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Discard()))
    return provider


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=150, help="interleaved rounds")
    parser.add_argument("--batch", type=int, default=5, help="handshakes per variant per round")
    parser.add_argument("--quick", action="store_true", help="a few seconds: smoke test only")
    parser.add_argument("--placement", choices=["split", "shared", "free"], default="split")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.batch = 6, 2
    place = placement(args.placement)
    print(f"bench_sinks: {environment()}")
    print(f"  {args.rounds} rounds x {args.batch} TLS 1.3 handshakes per variant")
    print(f"  placement {place.name}")
    with contextlib.ExitStack() as stack:
        stack.enter_context(pinned(place.client))
        certs: Certs = stack.enter_context(certificates())
        port = stack.enter_context(server_process(certs, "handshake", "1.3", place.server))
        directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="tlstiming-sinks-"))
        devnull = stack.enter_context(open(os.devnull, "w"))
        made = stack.enter_context(sinks(devnull, directory))
        measures = {"plain": measure(plain_context(certs), port)}
        backgrounds: list[Emitter] = []
        for name, sink in made.items():
            if isinstance(sink, Emitter) and sink.background:
                # Wait (untimed) for the worker: it must not run inside another
                # variant's timed handshake. The row is the cost on the path.
                backgrounds.append(sink)
                measures[name] = measure(timed_context(certs, sink), port, sink.flush)
            else:
                measures[name] = measure(timed_context(certs, sink), port)
        interleave(measures, rounds=max(1, args.rounds // 20), batch=2, seed=args.seed + 1)
        t0 = time.monotonic()
        samples = interleave(measures, rounds=args.rounds, batch=args.batch, seed=args.seed)
        elapsed = time.monotonic() - t0
        dropped = sum(b.dropped for b in backgrounds)
    print(report(samples, list(measures)))
    print(f"  background sinks: {dropped} spans dropped ({elapsed:.0f} s)")
    return 0


def report(samples: Samples, names: list[str]) -> str:
    """One row per variant: median wall time, wall ratio [IQR], CPU ratio, extra µs."""
    base_us = median_ns(samples, "plain") / 1e3
    rows = [["plain", f"{base_us:.1f}", "1", "1", ""]]
    for name in names[1:]:
        wall = ratio(samples, name, "plain")
        cpu = ratio(samples, name, "plain", CPU)
        us = median_ns(samples, name) / 1e3
        rows.append([name, f"{us:.1f}", wall.cell(), f"{cpu.median:.3f}", f"{us - base_us:+.0f}"])
    headers = ["variant", "median us", "wall ratio [IQR]", "cpu ratio", "extra us"]
    return "TLS 1.3 handshakes, median of per-round ratios to plain [IQR]\n" + table(headers, rows)


if __name__ == "__main__":
    sys.exit(main())
