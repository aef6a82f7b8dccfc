"""Where a connection keeps its recording: keys of its own ``__dict__``.

CPython builds ``SSLSocket``/``SSLObject`` with ``cls.__new__``, so no
``__init__`` of ours ever runs: everything a connection records lives in its
own ``__dict__``, under these keys, and concurrent handshakes never share
state, whatever thread or task drives them. (The C accelerator writes
``EVENTS``, ``CONTEXT`` and ``CERTIFICATE_REQUEST`` under the same names.)
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CERTIFICATE_REQUEST",
    "CHECKS",
    "CONTEXT",
    "EVENTS",
    "GUARDS",
    "PENDING",
    "REJECTED",
    "SPAN",
]

EVENTS: Final = "_tlstiming_events"  # list while recording, None once done
CONTEXT: Final = "_tlstiming_context"  # the TimedSSLContext the handshake began on
SPAN: Final = "_tlstiming_span"
PENDING: Final = "_tlstiming_pending"  # the handshake's events while awaiting a TLS 1.3 verdict
CERTIFICATE_REQUEST: Final = "_tlstiming_certificate_request"  # set when one was seen
CHECKS: Final = "_tlstiming_checks"  # verifications of a span awaiting its TLS 1.3 verdict
REJECTED: Final = "_tlstiming_rejected"  # the VerifierRejected a connection was refused with
GUARDS: Final = "_tlstiming_guards"  # read/write run do_handshake first (see decide.guard)
