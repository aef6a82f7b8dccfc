"""Span queries: ``SpanList``, ``SpanCapture``, budgets and findings over captured spans."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar, overload

from tlstiming._recording import delivery as _delivery
from tlstiming.diagnosis import RULES, Finding, Severity, diagnose, severity_rank
from tlstiming.diagnosis.budget import Budget, check, failure_message, host_of, percentile
from tlstiming.testing._endpoint import Endpoint, endpoint_of, port_of, url_of

__all__ = ["BudgetError", "FindingsError", "SpanCapture", "SpanList", "assert_budget"]

HANDSHAKE = "tls.handshake"
REQUEST = "http.request"
K = TypeVar("K")


class BudgetError(AssertionError):
    """A span, or a percentile across spans, is over its budget (an ``AssertionError``)."""


class FindingsError(AssertionError):
    """Spans have findings a test forbade (an ``AssertionError``)."""


def _budget(budget: Budget | None, limits: dict[str, Any]) -> Budget:
    if budget is not None and limits:
        raise TypeError("pass a Budget or keyword limits, not both")
    return budget if budget is not None else Budget(**limits)


def assert_budget(span: Any, budget: Budget | None = None, /, **limits: Any) -> None:
    """Fail unless ``span`` is within ``budget`` (or the keyword limits of :class:`Budget`).

    Raises:
        BudgetError: naming every limit broken, with the span's waterfall.
        TypeError: for fact limits on a span that is not a HandshakeSpan.
    """
    __tracebackhide__ = True
    SpanList([span]).assert_all(_budget(budget, limits))


class _Queries:
    """Filters and budgets over a snapshot of spans (any kind)."""

    __slots__ = ()

    def _items(self) -> tuple[Any, ...]:
        raise NotImplementedError

    def filter(
        self,
        *,
        kind: str | None = None,
        host: str | None = None,
        port: int | None = None,
        url: str | None = None,
        outcome: str | None = None,
        phase: str | None = None,
        side: str | None = None,
        where: Callable[[Any], bool] | None = None,
    ) -> SpanList:
        """The spans matching every criterion given.

        Args:
            kind: ``"tls.handshake"``, ``"http.request"``...
            host: the host talked to (see :func:`host_of`).
            port: the server's port (see :func:`port_of`).
            url: a request span's URL, ``scheme://host[:port]/path``.
            outcome: ``"ok"`` or ``"error"``.
            phase: spans that have a phase of this name (``"hello_retry"``).
            side: ``"client"`` or ``"server"`` (spans without a side never match).
            where: any predicate.
        """
        tests: list[Callable[[Any], bool]] = []
        if kind is not None:
            tests.append(lambda s: s.kind == kind)
        if host is not None:
            tests.append(lambda s: host_of(s) == host)
        if port is not None:
            tests.append(lambda s: port_of(s) == port)
        if url is not None:
            tests.append(lambda s: url_of(s) == url)
        if outcome is not None:
            tests.append(lambda s: s.outcome == outcome)
        if phase is not None:
            tests.append(lambda s: any(p.name == phase for p in getattr(s, "phases", ())))
        if side is not None:
            tests.append(lambda s: getattr(s, "side", None) == side)
        if where is not None:
            tests.append(where)
        return SpanList(s for s in self._items() if all(t(s) for t in tests))

    def group_by(self, key: Callable[[Any], K]) -> dict[K, SpanList]:
        """The spans grouped by ``key(span)``, groups in order of first appearance."""
        groups: dict[K, list[Any]] = {}
        for span in self._items():
            groups.setdefault(key(span), []).append(span)
        return {k: SpanList(v) for k, v in groups.items()}

    def group_by_endpoint(self) -> dict[Endpoint, SpanList]:
        """The spans grouped by the (host, port) they talked to (:func:`endpoint_of`)."""
        return self.group_by(endpoint_of)

    def group_by_url(self) -> dict[str | None, SpanList]:
        """The spans grouped by request URL (``None`` for spans without one)."""
        return self.group_by(url_of)

    @property
    def handshakes(self) -> SpanList:
        """The ``tls.handshake`` spans (:class:`~tlstiming.HandshakeSpan`)."""
        return self.filter(kind=HANDSHAKE)

    @property
    def requests(self) -> SpanList:
        """The ``http.request`` spans (from ``tlstiming.httpx``)."""
        return self.filter(kind=REQUEST)

    def durations_ms(self, phase: str | None = None) -> list[float]:
        """Each span's duration (or that of its ``phase``, 0 if absent) in milliseconds."""
        if phase is None:
            return [s.duration_ns / 1e6 for s in self._items()]
        return [
            sum(p.duration_ns for p in getattr(s, "phases", ()) if p.name == phase) / 1e6
            for s in self._items()
        ]

    def percentile_ms(self, q: float, phase: str | None = None) -> float:
        """The nearest-rank ``q``-th percentile of :meth:`durations_ms`."""
        return percentile(self.durations_ms(phase), q)

    def assert_all(self, budget: Budget | None = None, /, **limits: Any) -> None:
        """Check every span against the per-span limits, and percentiles across them.

        Raises:
            BudgetError: if a limit is broken, or there are no spans at all.
            TypeError: for fact limits on spans that are not HandshakeSpans.
        """
        __tracebackhide__ = True
        chosen = _budget(budget, limits)
        spans = self._items()
        if not spans:
            raise BudgetError(f"{chosen}: no spans to check")
        violations = check(spans, chosen)
        if violations:
            raise BudgetError(failure_message(spans, chosen, violations))

    def findings(self) -> tuple[Finding, ...]:
        """What :func:`tlstiming.diagnose` finds in these spans (together), worst first."""
        return diagnose(self._items()) if self._items() else ()

    def assert_no_findings(
        self, severity: Severity | None = "warning", /, *, ids: Iterable[str] = ()
    ) -> None:
        """Fail on any finding at or above ``severity``, or with one of ``ids``.

        ``severity=None`` checks ``ids`` only.

        Raises:
            FindingsError: listing each such finding with its evidence and fix.
            ValueError: an unknown severity.
        """
        __tracebackhide__ = True
        floor = 3 if severity is None else severity_rank(severity)  # None: ids only
        if isinstance(ids, str):
            raise TypeError("ids must be a collection of finding ids, not one string")
        forbidden = set(ids)
        unknown = forbidden - {rule.id for rule in RULES}
        if unknown:
            raise ValueError(f"unknown finding ids: {sorted(unknown)} (see docs/diagnosis.md)")
        found = [
            f for f in self.findings() if severity_rank(f.severity) >= floor or f.id in forbidden
        ]
        if found:
            lines = [f"{len(found)} finding(s) over {len(self)} span(s):"]
            for f in found:
                lines.append(f"  [{f.severity}] {f.id}: {f.title}")
                lines.append(f"      evidence: {f.evidence_text()}")
                lines.append(f"      fix: {f.hint}  ({f.docs})")
            raise FindingsError("\n".join(lines))

    def __len__(self) -> int:
        return len(self._items())

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items())

    def __bool__(self) -> bool:
        return bool(self._items())


class SpanList(_Queries, Sequence[Any]):
    """An immutable list of spans with filters and budget assertions.

    Args:
        spans: spans of any kind, in the order they finished.
    """

    __slots__ = ("_spans",)

    def __init__(self, spans: Iterable[Any] = ()) -> None:
        self._spans = tuple(spans)

    def _items(self) -> tuple[Any, ...]:
        return self._spans

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> SpanList: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return SpanList(self._spans[index])
        return self._spans[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SpanList):
            return self._spans == other._spans
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._spans)

    def __repr__(self) -> str:
        return f"SpanList({list(self._spans)!r})"


class SpanCapture(_Queries):
    """A sink that keeps every span it receives; a context manager that subscribes it.

    ``with SpanCapture() as spans:`` receives the spans of every
    :class:`~tlstiming.TimedSSLContext` (and every other span source that
    delivers to :func:`tlstiming.subscribe`) until the block ends. Queries
    (:meth:`filter`, :attr:`handshakes`, :meth:`assert_all`...) read a
    snapshot. Thread-safe.
    """

    __slots__ = ("_lock", "_spans", "_subscribed")

    def __init__(self) -> None:
        self._spans: list[Any] = []
        self._lock = threading.Lock()
        self._subscribed = False

    def __call__(self, span: Any) -> None:
        with self._lock:
            self._spans.append(span)

    def _items(self) -> tuple[Any, ...]:
        with self._lock:
            return tuple(self._spans)

    @property
    def spans(self) -> SpanList:
        """A snapshot of every span received so far, oldest first."""
        return SpanList(self._items())

    def __getitem__(self, index: int) -> Any:
        return self._items()[index]

    def clear(self) -> None:
        """Forget every span received so far."""
        with self._lock:
            self._spans.clear()

    def start(self) -> None:
        """Subscribe to every context's spans (:func:`tlstiming.subscribe`); idempotent."""
        if not self._subscribed:
            _delivery.subscribe(self)
            self._subscribed = True

    def stop(self) -> None:
        """Unsubscribe; idempotent. Spans already received are kept."""
        if self._subscribed:
            _delivery.unsubscribe(self)
            self._subscribed = False

    def __enter__(self) -> SpanCapture:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "capturing" if self._subscribed else "stopped"
        return f"<SpanCapture {len(self)} spans, {state}>"


for _public in (BudgetError, FindingsError, SpanCapture, SpanList, assert_budget):
    _public.__module__ = "tlstiming.testing"  # their documented home
