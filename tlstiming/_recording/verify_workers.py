"""The threads that run a timed verifier: its timeout bounds it, and it alone.

Each verifier registered with ``timeout=`` owns a few worker threads. A call
that overruns its timeout cannot be stopped (Python threads cannot be
cancelled), so it keeps its worker until it returns; while every worker of a
verifier is held that way, further calls of that verifier fail at once with
a timeout instead of queueing. Hung work therefore never delays another
verifier or another context, and the threads stay bounded: at most
:data:`MAX_WORKERS` per timed verifier, created on demand and ended when the
verifier is dropped.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable
from typing import Final, TypeVar

__all__ = ["MAX_WORKERS", "WARN_AFTER", "VerifierOverrun", "VerifierWorkers"]

MAX_WORKERS: Final = 8
"""Worker threads of one timed verifier: calls that may run at the same time."""

WARN_AFTER: Final = 3
"""Overruns of one verifier after which it is reported, once, on the ``tlstiming`` logger."""

_log = logging.getLogger("tlstiming")

T = TypeVar("T")
A = TypeVar("A")


class VerifierOverrun(Exception):
    """A verifier did not answer within its timeout, or all its workers are still overrunning."""


class VerifierWorkers:
    """The worker threads of one timed verifier."""

    __slots__ = ("_executor", "_lock", "_name", "_overrunning", "_overruns", "_warned")

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._overrunning = 0  # calls past their timeout that still hold a worker
        self._overruns = 0
        self._warned = False

    @property
    def overrunning(self) -> int:
        """Calls that overran their timeout and still hold a worker."""
        return self._overrunning

    def run(self, fn: Callable[[A], T], arg: A, timeout: float) -> T:
        """``fn(arg)`` on one of this verifier's workers, waiting at most ``timeout`` seconds.

        Raises:
            VerifierOverrun: no answer in time (the call goes on, holding its
                worker), or every worker is held by an earlier overrun.
        """
        with self._lock:
            if self._overrunning >= MAX_WORKERS:
                self._overran_locked()
                raise VerifierOverrun(
                    f"all {MAX_WORKERS} workers are still running earlier calls "
                    "that overran their timeout"
                )
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=MAX_WORKERS, thread_name_prefix=f"tlstiming-verify-{self._name}"
                )
            future = self._executor.submit(fn, arg)
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            if not future.cancel():  # started: it keeps its worker until it returns
                with self._lock:
                    self._overrunning += 1
                    self._overran_locked()
                future.add_done_callback(self._released)
            raise VerifierOverrun(f"did not finish within {timeout} s") from None

    def _released(self, _future: concurrent.futures.Future[T]) -> None:
        with self._lock:
            self._overrunning -= 1

    def _overran_locked(self) -> None:
        self._overruns += 1
        if self._overruns >= WARN_AFTER and not self._warned:
            self._warned = True
            _log.warning(
                "tlstiming: verifier %r keeps overrunning its timeout (%d times so far; "
                "%d calls still running): its connections fail per its on_error policy",
                self._name,
                self._overruns,
                self._overrunning,
            )
