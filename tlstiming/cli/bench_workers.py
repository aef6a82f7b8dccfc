"""The bench's workers: ``-c`` threads taking probes from one plan, a progress bar, Ctrl-C.

Each worker owns a client context (and, with ``--resume``, resumes its own
last session). The first Ctrl-C on the main thread only stops the plan: the
probes in flight get a grace time, and what finished is reported.
"""

from __future__ import annotations

import argparse
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

from tlstiming.cli.bench_stats import Bench, BenchRun
from tlstiming.cli.probe import ProbeOptions, build_context, probe_once
from tlstiming.recorder import SpanRecorder

__all__ = ["measure", "worker_context"]

_POLL_S: Final = 0.2
_GRACE_S: Final = 1.0  # after Ctrl-C: how long the probes in flight may take to finish


def worker_context(options: ProbeOptions) -> tuple[Any, SpanRecorder]:
    recorder = SpanRecorder(maxlen=8)
    return build_context(options, recorder), recorder


class _Plan:
    """The probes left to take; ``stop`` ends the taking."""

    def __init__(self, count: int) -> None:
        self._left = count
        self._lock = threading.Lock()
        self.stop = threading.Event()

    def take(self) -> bool:
        with self._lock:
            if self.stop.is_set() or self._left <= 0:
                return False
            self._left -= 1
            return True


_Done = object()


def _work(
    worker: int,
    options: ProbeOptions,
    context: tuple[Any, SpanRecorder],
    plan: _Plan,
    results: queue.Queue[Any],
    resume: bool,
) -> None:
    tls_context, recorder = context
    session = None
    try:
        while plan.take():
            recorder.clear()  # this worker's spans only, one probe at a time
            probe = probe_once(options, tls_context, recorder, session)
            if resume:
                session = probe.session or session
            results.put(BenchRun(probe, worker))
    except BaseException as exc:  # a bug in a worker: the main thread reports it
        results.put(exc)
    finally:
        results.put(_Done)


def measure(
    options: ProbeOptions,
    args: argparse.Namespace,
    contexts: list[tuple[Any, SpanRecorder]],
    show_progress: bool,
) -> Bench:
    plan = _Plan(args.requests)
    results: queue.Queue[Any] = queue.Queue()
    runs: list[BenchRun] = []
    interrupted = False
    start = time.perf_counter_ns()
    workers = [
        threading.Thread(
            target=_work,
            args=(worker, options, context, plan, results, args.resume),
            name=f"tlstiming-bench-{worker}",
            daemon=True,  # a probe in flight past the grace time after Ctrl-C is left behind
        )
        for worker, context in enumerate(contexts)
    ]
    for thread in workers:
        thread.start()
    with _progress(show_progress, args.requests) as advance, _ctrl_c(plan) as pressed:
        try:
            running = len(workers)
            while running and not pressed():
                try:
                    item = results.get(timeout=_POLL_S)
                except queue.Empty:
                    continue
                running -= item is _Done
                if isinstance(item, BaseException):
                    plan.stop.set()
                    raise item
                if isinstance(item, BenchRun):
                    runs.append(item)
                    advance(item.run.failure is not None)
            if pressed():
                _join(workers, min(_GRACE_S, options.timeout))
        except KeyboardInterrupt:  # off the main thread, or a second Ctrl-C
            plan.stop.set()
        if plan.stop.is_set():
            interrupted = True
            runs.extend(_drain(results))
    return Bench(
        target=options.target.shown,
        requested=args.requests,
        concurrency=args.concurrency,
        resume=args.resume,
        start_ns=start,
        elapsed_ns=time.perf_counter_ns() - start,
        runs=tuple(runs),
        interrupted=interrupted,
    )


@contextmanager
def _ctrl_c(plan: _Plan) -> Iterator[Callable[[], bool]]:
    """On the main thread, the first Ctrl-C only stops the plan; a second one raises.

    A flag, not an exception: a ``KeyboardInterrupt`` that lands in a
    finalizer (a socket the garbage collector closes on this thread) would
    be swallowed there, and the bench would go on.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # e.g. a background job
    ):
        yield plan.stop.is_set
        return

    def on_interrupt(signum: int, frame: object) -> None:
        if plan.stop.is_set():
            raise KeyboardInterrupt
        plan.stop.set()

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield plan.stop.is_set
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


def _join(threads: list[threading.Thread], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0))


def _drain(results: queue.Queue[Any]) -> list[BenchRun]:
    finished: list[BenchRun] = []
    while True:
        try:
            item = results.get_nowait()
        except queue.Empty:
            return finished
        if isinstance(item, BenchRun):
            finished.append(item)


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Any]:
    """A progress bar on stderr (never stdout); ``advance(failed)`` after each probe."""
    if not enabled:
        yield lambda failed: None
        return
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    console = Console(file=sys.stderr)
    bar = Progress(
        TextColumn("bench"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    task = bar.add_task("bench", total=total, failed=0)
    failures = 0

    def advance(failed: bool) -> None:
        nonlocal failures
        failures += failed
        bar.update(task, advance=1, failed=failures)

    with bar:
        yield advance
