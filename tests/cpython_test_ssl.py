"""Run CPython's own ``test_ssl`` with ``TimedSSLContext`` in place of ``ssl.SSLContext``.

The suite's modules get an ``ssl`` module whose ``SSLContext`` and
``create_default_context`` are tlstiming's (the real ``ssl`` module is left
alone: rebinding ``ssl.SSLContext`` globally would make ssl.py's property
setters recurse). Prints the unittest result and the number of spans the
suite's handshakes produced; exits 0 only if the suite passed.
"""

from __future__ import annotations

import importlib
import ssl
import sys
import types
import unittest
from typing import Any

import tlstiming


def main() -> int:
    """Run the suite; return the process exit status."""
    test_ssl: Any = importlib.import_module("test.test_ssl")
    ssl_servers: Any = importlib.import_module("test.ssl_servers")

    swapped = types.ModuleType("ssl")
    swapped.__dict__.update(ssl.__dict__)
    swapped.SSLContext = tlstiming.TimedSSLContext  # type: ignore[attr-defined]
    swapped.create_default_context = tlstiming.create_default_context  # type: ignore[attr-defined]
    test_ssl.ssl = swapped
    ssl_servers.ssl = swapped
    spans = tlstiming.SpanRecorder(maxlen=1_000_000)
    tlstiming.subscribe(spans)
    suite = unittest.defaultTestLoader.loadTestsFromModule(test_ssl)
    result = unittest.TextTestRunner(stream=sys.stdout, verbosity=1).run(suite)
    tlstiming.unsubscribe(spans)
    print(f"spans: {len(spans)}")
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
