"""OCSP stapling for Python TLS servers: a background thread keeps a fresh response at hand.

An :class:`OCSPStapler` is the callable to give
``TimedSSLContext.set_ocsp_staple()``: OpenSSL asks it for the staple on
every handshake whose client sent ``status_request``, and it answers with
the response it holds (a bytes object: no I/O, no lock). Its daemon thread
fetches that response from the responder in the leaf's AIA extension (one
POST, a hard deadline), checks it against the leaf and its issuer, refreshes
it well before its nextUpdate, retries with backoff while the responder is
down (stapling the last good response meanwhile) and stops stapling a
response past its nextUpdate. Each fetch is a :class:`StapleFetch`, handed
to the stapler's ``sink``; :class:`StaplerStatus` is its state at a glance.
See ``docs/stapling.md``.

The implementation lives in :mod:`tlstiming.verifiers._stapler`.
"""

from __future__ import annotations

from tlstiming.spans.stapling import StapleFetch, StaplerStatus
from tlstiming.verifiers._stapler import OCSPStapler

__all__ = ["OCSPStapler", "StapleFetch", "StaplerStatus"]

for _value in (OCSPStapler, StapleFetch, StaplerStatus):
    _value.__module__ = __name__  # their public home
del _value
