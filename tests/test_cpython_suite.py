"""CPython's own TLS test suites pass with TimedSSLContext swapped in."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

RUNNER = Path(__file__).resolve().parent / "cpython_test_ssl.py"


@pytest.mark.skipif(
    importlib.util.find_spec("test.test_ssl") is None,
    reason="this Python was installed without its test package (test.test_ssl)",
)
def test_cpython_tls_suites_pass_with_timed_contexts() -> None:
    result = subprocess.run(
        [sys.executable, str(RUNNER)], capture_output=True, text=True, timeout=600, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert re.search(r"^OK", output, re.MULTILINE), output[-2000:]
    spans = int(re.search(r"^spans: (\d+)$", output, re.MULTILINE).group(1))  # type: ignore[union-attr]
    assert spans > 100  # the suite's handshakes really went through tlstiming
    assert re.search(r"^suites: test\.test_ssl, test\.test_asyncio\.test_sslproto", output, re.M)
