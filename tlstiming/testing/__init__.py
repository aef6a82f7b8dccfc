"""Test helpers: capture spans, assert budgets, a test PKI, a local TLS server.

Importable without pytest (the pytest plugin, :mod:`tlstiming.pytest_plugin`,
is a thin layer over this module). Everything here is public; see
``docs/pytest.md``.
"""

from __future__ import annotations

from tlstiming.diagnosis.budget import OCSP_PHASES, OCSP_STALL_MS, Budget, host_of, percentile
from tlstiming.testing._answers import ServerResult
from tlstiming.testing._context import server_context
from tlstiming.testing._endpoint import Endpoint, endpoint_of, port_of
from tlstiming.testing._spans import (
    BudgetError,
    FindingsError,
    SpanCapture,
    SpanList,
    assert_budget,
)
from tlstiming.testing.ca import CA, Blob, LeafCert
from tlstiming.testing.pki import Issued, LocalPKI
from tlstiming.testing.server import LocalTLSServer

__all__ = [
    "CA",
    "OCSP_PHASES",
    "OCSP_STALL_MS",
    "Blob",
    "Budget",
    "BudgetError",
    "Endpoint",
    "FindingsError",
    "Issued",
    "LeafCert",
    "LocalPKI",
    "LocalTLSServer",
    "ServerResult",
    "SpanCapture",
    "SpanList",
    "assert_budget",
    "endpoint_of",
    "host_of",
    "percentile",
    "port_of",
    "server_context",
]
