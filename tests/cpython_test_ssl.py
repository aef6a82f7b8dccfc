"""Run CPython's own TLS tests with ``TimedSSLContext`` in place of ``ssl.SSLContext``.

``test_ssl`` (blocking sockets, the BIO path, servers, sessions, SNI) and
asyncio's ``test_sslproto`` and ``test_ssl`` (the event loop's TLS).

The suite's modules get an ``ssl`` module whose ``SSLContext`` and
``create_default_context`` are tlstiming's (the real ``ssl`` module is left
alone: rebinding ``ssl.SSLContext`` globally would make ssl.py's property
setters recurse). Prints the unittest result and the number of spans the
suite's handshakes produced; exits 0 only if the suite passed.
"""

from __future__ import annotations

import importlib
import importlib.util
import ssl
import sys
import types
import unittest

import tlstiming

SUITES = ("test.test_ssl", "test.test_asyncio.test_sslproto", "test.test_asyncio.test_ssl")
"""The suites run where the interpreter has them (asyncio's test_ssl is new in 3.11)."""


def _present(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def main() -> int:
    """Run the suites; return the process exit status."""
    suites = [importlib.import_module(name) for name in SUITES if _present(name)]
    print(f"suites: {', '.join(s.__name__ for s in suites)}")
    helpers = [importlib.import_module(n) for n in ("test.ssl_servers", "test.test_asyncio.utils")]

    swapped = types.ModuleType("ssl")
    swapped.__dict__.update(ssl.__dict__)
    swapped.SSLContext = tlstiming.TimedSSLContext  # type: ignore[attr-defined]
    swapped.create_default_context = tlstiming.create_default_context  # type: ignore[attr-defined]
    for module in (*suites, *helpers):
        if hasattr(module, "ssl"):
            setattr(module, "ssl", swapped)  # noqa: B010 (a module global, by name)
    spans = tlstiming.SpanRecorder(maxlen=1_000_000)
    tlstiming.subscribe(spans)
    suite = unittest.TestSuite(unittest.defaultTestLoader.loadTestsFromModule(m) for m in suites)
    result = unittest.TextTestRunner(stream=sys.stdout, verbosity=1).run(suite)
    tlstiming.unsubscribe(spans)
    print(f"spans: {len(spans)}")
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
