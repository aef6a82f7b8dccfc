"""Request spans: one HTTP request cut into phases, from timestamped marks.

Pure: no httpx, no sockets, no clock. The adapter (``tlstiming.httpx``)
fills a :class:`RequestRecord` with ``perf_counter_ns`` timestamps as the
request runs and freezes it into a :class:`RequestSpan` when the request
ends; everything else (the phases, the redacted URL, the error's phase) is
computed the first time somebody reads it, so every duration here is exactly
testable with made-up numbers.

A *mark* ``(name, t_ns)`` says "phase ``name`` starts at ``t_ns``". The
first phase, ``pool_wait``, starts with the request; each mark starts the
next one; the last one ends with the request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from tlstiming.spans.escape import escape
from tlstiming.spans.handshake import Outcome, Phase

if TYPE_CHECKING:
    from tlstiming.spans.handshake import HandshakeSpan

__all__ = [
    "EXTENSION_KEY",
    "PHASE_NAMES",
    "ConnectAttempt",
    "ConnectionInfo",
    "Mark",
    "RequestError",
    "RequestRecord",
    "RequestSpan",
    "tile",
]

EXTENSION_KEY: Final = "tlstiming.request_span"
"""The key of a finished request's span in ``httpx.Response.extensions``."""

PHASE_NAMES: Final = (
    "pool_wait",
    "retry",
    "dns",
    "connect",
    "proxy_tls",
    "proxy_connect",
    "tls",
    "send_request",
    "wait_first_byte",
    "receive_body",
)
"""Every phase a request span can have, in the order they occur (docs/httpx.md)."""

SETUP_PHASES: Final = frozenset({"retry", "dns", "connect", "proxy_tls", "proxy_connect", "tls"})

Mark = tuple[str, int]

_DEFAULT_PORTS: Final = {"https": 443, "http": 80, "wss": 443, "ws": 80}


class URLLike(Protocol):
    """What a request span needs of a URL (``httpx.URL`` has it)."""

    @property
    def scheme(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int | None: ...
    @property
    def raw_path(self) -> bytes: ...


URLLike.__module__ = "tlstiming.typing"  # its public home


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectAttempt:
    """One TCP connect to one resolved address.

    Attributes:
        address: the IP address tried.
        port: the port.
        start_ns: when the attempt began (``perf_counter_ns`` clock).
        end_ns: when it succeeded or failed.
        error_type: the exception's qualified class name, ``None`` on success.
        error_message: ``str()`` of the exception, ``None`` on success.
    """

    address: str
    port: int
    start_ns: int
    end_ns: int
    error_type: str | None = None
    error_message: str | None = None

    @property
    def duration_ns(self) -> int:
        """Wall time of the attempt."""
        return self.end_ns - self.start_ns


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionInfo:
    """How the connection a request used was opened. Shared by every request on it.

    Attributes:
        opened_by: span id of the request that opened the connection.
        handshake: the TLS handshake with the origin (``None`` for plain
            HTTP, a context tlstiming does not instrument, or a failed
            setup that never got that far).
        proxy_handshake: the TLS handshake with an HTTPS proxy.
        resolved: every address DNS returned, in order.
        attempts: every connect attempt, in order (failures first).
        proxied: the connection goes through a proxy.
    """

    opened_by: str
    handshake: HandshakeSpan | None = None
    proxy_handshake: HandshakeSpan | None = None
    resolved: tuple[str, ...] = ()
    attempts: tuple[ConnectAttempt, ...] = ()
    proxied: bool = False

    @property
    def handshake_id(self) -> str | None:
        """Span id of the handshake that opened the connection."""
        return None if self.handshake is None else self.handshake.span_id

    @property
    def peer(self) -> tuple[str, int] | None:
        """The address the connection was made to (the last attempt, if it succeeded)."""
        last = self.attempts[-1] if self.attempts else None
        return None if last is None or last.error_type else (last.address, last.port)


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestError:
    """Why a request failed.

    Attributes:
        type: qualified class name of the exception the caller got
            (``httpx.ConnectError``).
        message: ``str()`` of that exception.
        phase: the phase in progress when it failed.
    """

    type: str
    message: str
    phase: str


class RequestRecord:
    """What the adapter records while a request runs; a span reads it, never writes it.

    Times are ``perf_counter_ns`` values or ``None`` when the request never
    got there. ``marks`` holds the connection-setup marks (``None`` when the
    request reused a connection); ``write_ns`` is when a reused connection
    started writing the request. Unset fields keep the class defaults below
    (the request path stores only what happened).
    """

    end_ns: int | None = None
    end_unix_ns = 0
    marks: list[Mark] | None = None
    write_ns: int | None = None
    sent_ns: int | None = None
    head_ns: int | None = None
    status_code: int | None = None
    http_version: bytes | str | None = None
    connection: ConnectionInfo | None = None
    reused = False
    idle_ns: int | None = None
    error_type: str | None = None
    error_message: str | None = None

    def __init__(self, span_id: int, start_ns: int, method: str, url: URLLike) -> None:
        self.id = span_id
        self.start_ns = start_ns
        self.method = method
        self.url = url


def tile(
    start_ns: int,
    marks: Sequence[Mark],
    end_ns: int,
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Cut ``[start_ns, end_ns]`` into phases at the marks.

    Args:
        start_ns: when the request started; ``pool_wait`` starts here.
        marks: ``(phase, t_ns)`` in the order recorded. A ``retry`` mark
            (a connect attempt failed and is retried) folds every setup
            phase before it into one ``retry`` phase.
        end_ns: when the request ended.

    Returns:
        ``(names, bounds)``: phase ``i`` runs from ``bounds[i]`` to
        ``bounds[i + 1]``; contiguous, summing to ``end_ns - start_ns``.
    """
    names = ["pool_wait"]
    bounds = [start_ns]
    for name, t in _fold_retries(marks):
        if name == names[-1]:
            continue
        names.append(name)
        bounds.append(min(max(t, bounds[-1]), end_ns))
    bounds.append(max(end_ns, bounds[-1]))
    return tuple(names), tuple(bounds)


def _fold_retries(marks: Sequence[Mark]) -> Sequence[Mark]:
    last = max((i for i, (name, _) in enumerate(marks) if name == "retry"), default=-1)
    if last < 0:
        return marks
    first = next(i for i, (name, _) in enumerate(marks) if name in SETUP_PHASES)
    return [*marks[:first], ("retry", marks[first][1]), *marks[last + 1 :]]


def all_marks(record: RequestRecord) -> list[Mark]:
    """The record's marks, request phases included, in order."""
    marks = list(record.marks or ())
    if not marks and record.write_ns is not None:
        marks.append(("send_request", record.write_ns))
    if record.sent_ns is not None:
        marks.append(("wait_first_byte", record.sent_ns))
    if record.head_ns is not None:
        marks.append(("receive_body", record.head_ns))
    return marks


class RequestSpan:
    """The timing of one HTTP request, from the transport's entry to the response's close.

    Immutable: every attribute is read-only. Build through
    :class:`tlstiming.httpx.TimedTransport`; read with
    ``tlstiming.span_of(response)`` or a sink.
    """

    __slots__ = ("_bounds", "_names", "_r")

    kind: Final = "http.request"

    def __init__(self, record: RequestRecord) -> None:
        if record.end_ns is None:
            raise ValueError("a request span needs a finished record")
        self._r = record
        self._names: tuple[str, ...] | None = None
        self._bounds: tuple[int, ...] = ()

    def __reduce__(self) -> str | tuple[Any, ...]:
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")

    def __repr__(self) -> str:
        status = self._r.status_code if self._r.status_code is not None else self.outcome
        return (
            f"<RequestSpan {escape(self.method)} {escape(self.url)} {status} "
            f"{self.duration_ns / 1e6:.3f} ms id={self.span_id}>"
        )

    # -- identity and time ---------------------------------------------------

    @property
    def span_id(self) -> str:
        """16 hex digits, unique per span."""
        return f"{self._r.id:016x}"

    @property
    def start_ns(self) -> int:
        """When the transport was entered (``time.perf_counter_ns()`` clock)."""
        return self._r.start_ns

    @property
    def end_ns(self) -> int:
        """When the response was closed or the request failed (same clock)."""
        end = self._r.end_ns
        assert end is not None
        return end

    @property
    def duration_ns(self) -> int:
        """Total wall time of the request."""
        return self.end_ns - self.start_ns

    @property
    def start_unix_ns(self) -> int:
        """The start on the wall clock (Unix epoch, ns), for exporters."""
        return self._r.end_unix_ns - self.duration_ns

    @property
    def outcome(self) -> Outcome:
        """``"ok"`` or ``"error"`` (an HTTP error status is still ``"ok"``)."""
        return "ok" if self._r.error_type is None else "error"

    @property
    def error(self) -> RequestError | None:
        """Why the request failed, or ``None``."""
        r = self._r
        if r.error_type is None:
            return None
        return RequestError(
            type=r.error_type, message=r.error_message or "", phase=self._tiling()[0][-1]
        )

    # -- the request ---------------------------------------------------------

    @property
    def method(self) -> str:
        """The HTTP method, e.g. ``"GET"``."""
        return self._r.method

    @property
    def url(self) -> str:
        """``scheme://host[:port]/path``: never user info, query or fragment."""
        u = self._r.url
        host = f"[{u.host}]" if ":" in u.host else u.host
        port = f":{u.port}" if u.port is not None else ""
        path = u.raw_path.split(b"?", 1)[0].decode("ascii", "replace")
        return f"{u.scheme}://{host}{port}{path}"

    @property
    def server_address(self) -> str:
        """The host the request was sent to (as in the URL)."""
        return self._r.url.host

    @property
    def server_port(self) -> int | None:
        """The port, explicit or the scheme's default."""
        u = self._r.url
        return u.port if u.port is not None else _DEFAULT_PORTS.get(u.scheme)

    @property
    def status_code(self) -> int | None:
        """The response's status, ``None`` if no response head arrived."""
        return self._r.status_code

    @property
    def http_version(self) -> str | None:
        """``"1.1"``, ``"2"``… as the response reported it; ``None`` without a response."""
        version = self._r.http_version
        if version is None:
            return None
        text = version.decode("ascii", "replace") if isinstance(version, bytes) else version
        return text.removeprefix("HTTP/")

    # -- the connection ------------------------------------------------------

    @property
    def connection(self) -> ConnectionInfo | None:
        """How the connection was opened; ``None`` if the request never got one."""
        return self._r.connection

    @property
    def reused(self) -> bool:
        """The request went out on a connection another request had opened."""
        return self._r.reused

    @property
    def idle_ns(self) -> int | None:
        """For a reused connection, how long it sat idle before this request (0: in use)."""
        return self._r.idle_ns

    @property
    def handshake(self) -> HandshakeSpan | None:
        """The origin's TLS handshake if this request opened the connection, else ``None``."""
        connection = self._r.connection
        return None if connection is None or self._r.reused else connection.handshake

    @property
    def proxy_handshake(self) -> HandshakeSpan | None:
        """The HTTPS proxy's TLS handshake if this request opened the connection."""
        connection = self._r.connection
        return None if connection is None or self._r.reused else connection.proxy_handshake

    @property
    def alpn(self) -> str | None:
        """The ALPN protocol the server selected on this connection's handshake."""
        connection = self._r.connection
        if connection is None or connection.handshake is None:
            return None
        return connection.handshake.facts.alpn_selected

    # -- phases --------------------------------------------------------------

    @property
    def phases(self) -> tuple[Phase, ...]:
        """Contiguous phases from start to end; their durations sum to :attr:`duration_ns`."""
        names, bounds = self._tiling()
        return tuple(
            Phase(name=name, start_ns=bounds[i], end_ns=bounds[i + 1], cpu_ns=None)
            for i, name in enumerate(names)
        )

    def phase(self, name: str) -> Phase | None:
        """Return the phase called ``name``, or ``None`` if the request had none."""
        return next((p for p in self.phases if p.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict with the keys documented in ``docs/schema.md``."""
        from tlstiming.spans.request_export import request_to_dict  # noqa: PLC0415

        return request_to_dict(self)

    def _tiling(self) -> tuple[tuple[str, ...], tuple[int, ...]]:
        names = self._names
        if names is None:
            names, self._bounds = tile(self._r.start_ns, all_marks(self._r), self.end_ns)
            self._names = names
        return names, self._bounds
