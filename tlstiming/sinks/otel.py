"""OpenTelemetry: handshakes (and requests) as spans, optional duration histograms.

Needs the ``otel`` extra (``pip install 'tlstiming[otel]'``): only
``opentelemetry-api`` is imported; the application installs and configures
the SDK (providers, processors, exporters). Nothing here sets a global.

Span shapes follow the OpenTelemetry conventions for .NET's network spans,
the closest published model:

- a handshake: ``TLS client handshake {server.address}`` (server side:
  ``TLS server handshake``), kind ``INTERNAL``, with every TLS message as a
  span event at the moment it was sent or received;
- a request span (kind ``http.request``): a ``CLIENT`` span ``{method}``,
  and, when the request opened a new connection, a root span ``HTTP
  connection_setup {server.address}:{server.port}`` with children ``DNS
  lookup``, ``socket connect`` and ``TLS client handshake``, linked from the
  request span (or nested under it with ``nest_connection_setup=True``).

Start and end times are the span's own (``start_time_unix_nano`` and
``duration_ns``), not the time the sink ran, so a :class:`BackgroundSink`
or a sampled sink exports the same timeline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeGuard

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics, trace
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - exercised in a subprocess
    raise ImportError(
        "tlstiming.sinks.otel needs OpenTelemetry's API: pip install 'tlstiming[otel]'"
    ) from exc

from tlstiming.sinks._common import Emitter
from tlstiming.sinks._flatten import FINDINGS_KEY, SpanLike, findings_of, flatten_dict, table_of
from tlstiming.sinks._otel_metrics import Histograms

__all__ = ["OTelSink"]

_DNS: Final = ("dns", "dns_lookup", "resolve")
_CONNECT: Final = ("connect", "tcp_connect", "socket_connect")
_TLS: Final = ("tls", "tls_handshake", "handshake")
_WAIT: Final = ("pool_wait", "wait_for_connection")
_PROXY: Final = ("retry", "proxy_connect", "proxy_tls")
_SETUP: Final = _DNS + _CONNECT + _PROXY + _TLS
_NOT_ATTRIBUTES: Final = frozenset({"tlstiming.log_schema", "span.id"})


class OTelSink(Emitter):
    """Export spans through the OpenTelemetry API.

    Args:
        tracer_provider: default: the global one (a no-op until the
            application configures the SDK).
        meter_provider: default: the global one.
        traces: export spans.
        metrics: record the histograms ``tlstiming.handshake.duration``
            (seconds, per handshake), ``tlstiming.handshake.phase.duration``
            (seconds, per phase, attribute ``tls.handshake.phase``) and
            ``tlstiming.request.duration`` (seconds, per request span), with
            bucket advice from 0.1 ms to 10 s. Their attributes are
            bounded: on the client side ``tls.side``, ``tls.protocol.version``,
            ``server.address`` (the ``server_hostname`` the caller asked for),
            ``server.port`` and ``error.type``; on the server side
            ``tls.side``, ``tls.protocol.version`` and ``error.type`` only,
            never the SNI name, the client's port, the ALPN offer or anything
            else a client chooses, so that no client can create series at
            will. A version the peer claims beyond the known ones (``1.0`` to
            ``1.3``, ``SSL 3.0``) is recorded as ``other``. Requests:
            ``http.request.method``, ``server.address``, ``server.port``,
            ``http.response.status_code``, ``error.type``. Traces keep every
            attribute (docs/logging.md lists the Prometheus names).
        nest_connection_setup: make a request's ``HTTP connection_setup``
            span a child of the request span instead of a linked root span.
        background: wrap the sink in one :class:`BackgroundSink` (the
            default; its worker runs in a copy of the handshake's context, so
            the current span is still the parent); ``False`` exports on the
            calling thread.
    """

    __slots__ = ("_histograms", "_nest", "_tracer")

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        traces: bool = True,
        metrics: bool = False,
        nest_connection_setup: bool = False,
        background: bool = True,
    ) -> None:
        from tlstiming import __version__  # noqa: PLC0415

        self._tracer = (
            trace.get_tracer("tlstiming", __version__, tracer_provider) if traces else None
        )
        self._histograms: Histograms | None = None
        if metrics:
            meter = _metrics_api().get_meter("tlstiming", __version__, meter_provider)
            self._histograms = Histograms(meter)
        self._nest = nest_connection_setup
        self._wrap(background)

    def emit(self, span: SpanLike) -> None:
        """Export ``span``."""
        data = span.to_dict()
        kind = data.get("tlstiming.kind")
        if kind == "tls.handshake":
            if self._histograms is not None:
                self._histograms.record_handshake(data, span)
            if self._tracer is not None:
                self._handshake(data, None, span)
            return
        if kind == "http.request" and self._histograms is not None:
            self._histograms.record_request(data)
            handshake, handshake_span = _nested_handshake(span, data)
            if handshake is not None and not data.get("tlstiming.connection.reused"):
                self._histograms.record_handshake(handshake, handshake_span)  # it opened one
        if self._tracer is not None:
            if kind == "http.request":
                self._request(span, data)
            else:
                self._generic(data)

    # -- traces ---------------------------------------------------------------

    def _handshake(
        self, data: Mapping[str, Any], parent: otel_context.Context | None, span: object
    ) -> None:
        """Export a handshake: ``data`` is ``span.to_dict()`` (``span`` may be ``None``)."""
        assert self._tracer is not None
        start = int(data["start_time_unix_nano"])
        host = data.get("server.address")
        if data.get("tls.side") == "server":
            name = "TLS server handshake"
        else:
            name = f"TLS client handshake {host}" if host else "TLS client handshake"
        otel_span = self._tracer.start_span(
            name,
            context=parent,
            kind=SpanKind.INTERNAL,
            attributes=_attributes(data, span),
            start_time=start,
        )
        for message in data.get("tlstiming.messages") or ():
            otel_span.add_event(
                str(message["type"]),
                {
                    "tls.message.direction": message["direction"],
                    "tls.message.content_type": message["content_type"],
                    "tls.message.size": message["size"],
                },
                timestamp=start + int(message["t_ns"]),
            )
        _finish(otel_span, data, start + int(data["duration_ns"]))

    def _request(self, span: SpanLike, data: Mapping[str, Any]) -> None:
        assert self._tracer is not None
        start = int(data["start_time_unix_nano"])
        phases = {p["name"]: p for p in data.get("tlstiming.phases") or ()}
        handshake, handshake_span = _nested_handshake(span, data)
        setup = _find(phases, _SETUP)
        own = {k: v for k, v in data.items() if not _is_span_dict(v)}
        method = data.get("http.request.method")
        links: list[Link] = []
        setup_span = None
        if setup and not self._nest:
            setup_span = self._setup(data, phases, (handshake, handshake_span), start, None)
            links.append(Link(setup_span.get_span_context()))
        request = self._tracer.start_span(
            str(method) if method else "HTTP",
            kind=SpanKind.CLIENT,
            attributes=_attributes(own, span, nested_spans=False),
            start_time=start,
            links=links,
        )
        inside = trace.set_span_in_context(request)
        wait = [p for p in _find(phases, _WAIT) if int(p["duration_ns"]) > 0]
        if wait:
            self._child(f"HTTP wait_for_connection {_hostport(data)}", wait[0], start, inside)
        if setup and self._nest:
            self._setup(data, phases, (handshake, handshake_span), start, inside)
        _finish(request, data, start + int(data["duration_ns"]))

    def _setup(
        self,
        data: Mapping[str, Any],
        phases: Mapping[str, Mapping[str, Any]],
        nested: tuple[Mapping[str, Any] | None, object],
        start: int,
        parent: otel_context.Context | None,
    ) -> trace.Span:
        assert self._tracer is not None
        handshake, handshake_span = nested
        found = _find(phases, _SETUP)
        begin = start + min(int(p["start_ns"]) for p in found)
        end = start + max(int(p["start_ns"]) + int(p["duration_ns"]) for p in found)
        attributes = {
            k: data[k]
            for k in ("server.address", "server.port", "network.peer.address", "url.scheme")
            if data.get(k) is not None
        }
        setup = self._tracer.start_span(
            f"HTTP connection_setup {_hostport(data)}",
            context=parent if parent is not None else otel_context.Context(),
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            start_time=begin,
        )
        inside = trace.set_span_in_context(setup)
        host = data.get("server.address") or "?"
        proxy = data.get("tlstiming.proxy_handshake")
        for names, name in (
            (_DNS, f"DNS lookup {host}"),
            (("retry",), "connect retry"),
            (_CONNECT, f"socket connect {_peer(data)}"),
            (("proxy_tls",), "TLS client handshake (proxy)"),
            (("proxy_connect",), f"HTTP CONNECT {_hostport(data)}"),
        ):
            for phase in _find(phases, names):
                if names == ("proxy_tls",) and _is_span_dict(proxy):
                    self._handshake(proxy, inside, None)
                else:
                    self._child(name, phase, start, inside)
        if handshake is not None:
            self._handshake(handshake, inside, handshake_span)
        else:
            for phase in _find(phases, _TLS):
                self._child(f"TLS client handshake {host}", phase, start, inside)
        failed = (handshake is not None and handshake.get("outcome") == "error") or (
            data.get("outcome") == "error"
            and (data.get("tlstiming.failed_phase") or _last_phase(phases)) in _SETUP
        )
        if failed:
            error = handshake if handshake is not None and "error.type" in handshake else data
            setup.set_attribute("error.type", str(error.get("error.type") or "_OTHER"))
            setup.set_status(Status(StatusCode.ERROR))
        setup.end(end_time=end)
        return setup

    def _child(
        self, name: str, phase: Mapping[str, Any], start: int, parent: otel_context.Context
    ) -> None:
        assert self._tracer is not None
        begin = start + int(phase["start_ns"])
        child = self._tracer.start_span(
            name, context=parent, kind=SpanKind.INTERNAL, start_time=begin
        )
        child.end(end_time=begin + int(phase["duration_ns"]))

    def _generic(self, data: Mapping[str, Any]) -> None:
        assert self._tracer is not None
        start = int(data["start_time_unix_nano"])
        otel_span = self._tracer.start_span(
            str(data.get("tlstiming.kind") or "tlstiming.span"),
            kind=SpanKind.INTERNAL,
            attributes=_attributes(data, None),
            start_time=start,
        )
        _finish(otel_span, data, start + int(data["duration_ns"]))

    def __repr__(self) -> str:
        traces, metrics = self._tracer is not None, self._histograms is not None
        return f"<OTelSink traces={traces} metrics={metrics}>"


def _metrics_api() -> Any:
    return metrics


def _attributes(
    data: Mapping[str, Any], span: object, *, nested_spans: bool = True
) -> dict[str, Any]:
    """The flat fields as attributes: from ``span``'s table when it has one, else from ``data``."""
    table = table_of(span)
    flat = flatten_dict(data) if table is None else table.flat(span, nested_spans=nested_spans)
    out = {k: v for k, v in flat.items() if k not in _NOT_ATTRIBUTES}
    if "span.id" in flat:
        out["tlstiming.span_id"] = flat["span.id"]
    ids = [finding.id for finding in findings_of(span)]  # type: ignore[arg-type]
    if ids:
        out[FINDINGS_KEY] = ids
    return out


def _finish(otel_span: trace.Span, data: Mapping[str, Any], end: int) -> None:
    if data.get("outcome") == "error":
        otel_span.set_status(Status(StatusCode.ERROR, data.get("error.message")))
    otel_span.end(end_time=end)


def _is_span_dict(value: Any) -> TypeGuard[Mapping[str, Any]]:
    return isinstance(value, Mapping) and "tlstiming.kind" in value


def _nested_handshake(
    span: SpanLike, data: Mapping[str, Any]
) -> tuple[Mapping[str, Any] | None, object]:
    """The handshake that opened the request's connection: its dict, and its span if exact.

    The span comes back only when the dict is its ``to_dict()`` (a request
    span of our own, or a span-like that left the handshake out of its dict).
    """
    nested = data.get("tlstiming.handshake")
    attached = getattr(span, "handshake", None)
    if _is_span_dict(nested):
        return dict(nested), (attached if table_of(span) is not None else None)
    if attached is not None and getattr(attached, "kind", None) == "tls.handshake":
        return dict(attached.to_dict()), attached
    return None, None


def _find(phases: Mapping[str, Mapping[str, Any]], names: Sequence[str]) -> list[Mapping[str, Any]]:
    return [phases[n] for n in names if n in phases]


def _last_phase(phases: Mapping[str, Mapping[str, Any]]) -> str | None:
    return max(phases, key=lambda n: int(phases[n]["start_ns"]), default=None)


def _hostport(data: Mapping[str, Any]) -> str:
    host, port = data.get("server.address") or "?", data.get("server.port")
    return f"{host}:{port}" if port is not None else str(host)


def _peer(data: Mapping[str, Any]) -> str:
    address, port = data.get("network.peer.address"), data.get("network.peer.port")
    if address is None:
        return _hostport(data)
    return f"{address}:{port}" if port is not None else str(address)
