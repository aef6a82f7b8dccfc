"""The OpenTelemetry sink's histograms: names, millisecond buckets, bounded attributes.

No OpenTelemetry semantic convention defines a client TLS handshake metric
(the only TLS duration metric is the server-side
``kestrel.tls_handshake.duration``), so the names live in the library's own
namespace, ``tlstiming.``. Units are seconds; the SDK's default bucket bounds
(0, 5, 10, 25, ... suited to milliseconds) would put a 2 ms and a 100 ms
handshake in one bucket, so each histogram carries explicit bucket advice
from 0.1 ms to 10 s (``explicit_bucket_boundaries_advisory``, opentelemetry-api
1.23 and later; older APIs get no advice, and an application's own ``View``
always wins).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from tlstiming._wire.names import VERSIONS

__all__ = [
    "BUCKETS",
    "HANDSHAKE_DURATION",
    "PHASE_DURATION",
    "REQUEST_DURATION",
    "Histograms",
]

HANDSHAKE_DURATION: Final = "tlstiming.handshake.duration"
PHASE_DURATION: Final = "tlstiming.handshake.phase.duration"
REQUEST_DURATION: Final = "tlstiming.request.duration"

BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
"""Bucket upper bounds in seconds: 0.1 ms to 10 s, three per decade."""

# Metric attributes per side. Every distinct set of values is one more series to keep, so
# nothing a peer picks freely is one: a server never uses the client's SNI name, its port
# or its ALPN offer.
_HANDSHAKE_KEYS: Final = {
    "client": ("tls.side", "tls.protocol.version", "server.address", "server.port", "error.type"),
    "server": ("tls.side", "tls.protocol.version", "error.type"),
}
_REQUEST_KEYS: Final = (
    "http.request.method",
    "server.address",
    "server.port",
    "http.response.status_code",
    "error.type",
)
_KNOWN_VERSIONS: Final = frozenset(VERSIONS.values())


class Histograms:
    """The three histograms, created on one meter."""

    __slots__ = ("handshake", "phase", "request")

    def __init__(self, meter: Any) -> None:
        self.handshake = _histogram(meter, HANDSHAKE_DURATION, "TLS handshake duration")
        self.phase = _histogram(meter, PHASE_DURATION, "Duration of one phase of a TLS handshake")
        self.request = _histogram(
            meter, REQUEST_DURATION, "HTTP request duration, connection setup included"
        )

    def record_handshake(self, data: Mapping[str, Any], span: object) -> None:
        """Record a handshake span: ``data`` is its ``to_dict()``."""
        attributes = handshake_attributes(data, span)
        self.handshake.record(int(data["duration_ns"]) / 1e9, attributes)
        for phase in data.get("tlstiming.phases") or ():
            self.phase.record(
                int(phase["duration_ns"]) / 1e9,
                {**attributes, "tls.handshake.phase": phase["name"]},
            )

    def record_request(self, data: Mapping[str, Any]) -> None:
        """Record a request span: ``data`` is its ``to_dict()``."""
        attributes = {k: data[k] for k in _REQUEST_KEYS if data.get(k) is not None}
        self.request.record(int(data["duration_ns"]) / 1e9, attributes)


def _histogram(meter: Any, name: str, description: str) -> Any:
    try:
        return meter.create_histogram(
            name, unit="s", description=description, explicit_bucket_boundaries_advisory=BUCKETS
        )
    except TypeError:  # opentelemetry-api before 1.23: no advice
        return meter.create_histogram(name, unit="s", description=description)


def handshake_attributes(data: Mapping[str, Any], span: object) -> dict[str, Any]:
    """The bounded attributes of a handshake's histograms (see ``OTelSink``)."""
    side = "client" if data.get("tls.side") == "client" else "server"
    out = {k: data[k] for k in _HANDSHAKE_KEYS[side] if data.get(k) is not None}
    if side == "client" and "server.port" not in out:
        peer = getattr(span, "peer", None)  # to_dict() keeps the port in network.peer.port
        port = peer[1] if isinstance(peer, tuple) else data.get("network.peer.port")
        if port is not None:
            out["server.port"] = port
    version = out.get("tls.protocol.version")
    if version is not None and version not in _KNOWN_VERSIONS:
        out["tls.protocol.version"] = "other"
    return out
