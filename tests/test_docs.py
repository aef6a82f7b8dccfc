"""The docs tell the truth: their examples run, their tables match the code."""

from __future__ import annotations

import importlib
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import tlstiming
from tlstiming._analysis.timeline import PHASE_NAMES
from tlstiming.cli import demo as _demo

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
_ADDRESS = re.compile(r'^HOST, PORT = "example\.com", 443$', re.MULTILINE)


def _examples() -> Iterator[tuple[str, int, str]]:
    for path in DOCS:
        for n, match in enumerate(_BLOCK.finditer(path.read_text())):
            yield path.name, n, match.group(1)


@pytest.fixture(scope="module")
def local_server() -> Iterator[tuple[int, str]]:
    with _demo.demo_pki() as pki:
        # Real HTTPS servers wait for the client to speak: no greeting.
        with _demo.LoopbackServer(pki.server_context(), greeting=b"") as server:
            yield server.port, pki.ca_file


@pytest.mark.parametrize(("doc", "n", "code"), list(_examples()), ids=lambda v: str(v)[:20])
def test_example_runs(
    doc: str,
    n: int,
    code: str,
    local_server: tuple[int, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Examples talk to HOST, PORT: the test points them at a loopback server it trusts."""
    port, ca_file = local_server
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    code = _ADDRESS.sub(f'HOST, PORT = "localhost", {port}', code)
    assert "example.com" not in code, f"{doc} example {n} must use HOST, PORT"
    exec(compile(code, f"{doc}[{n}]", "exec"), {"__name__": f"docs_{n}"})


def _table_keys(doc: str, heading: str) -> list[str]:
    text = (ROOT / "docs" / doc).read_text()
    section = text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", section, re.MULTILINE)


@pytest.fixture(scope="module")
def real_span() -> tlstiming.HandshakeSpan:
    with _demo.demo_pki() as pki:
        with _demo.LoopbackServer(pki.server_context()) as server:
            context = tlstiming.create_default_context(cafile=pki.ca_file)
            with socket.create_connection(("127.0.0.1", server.port)) as raw:
                with context.wrap_socket(raw, server_hostname="localhost") as tls:
                    span = tlstiming.span_of(tls)
    assert span is not None
    return span


def test_schema_doc_lists_exactly_the_keys(real_span: tlstiming.HandshakeSpan) -> None:
    data = real_span.to_dict()
    json.dumps(data)
    assert _table_keys("schema.md", "Handshake span keys") == list(data)
    assert _table_keys("schema.md", "Phase objects") == list(data["tlstiming.phases"][0])
    assert _table_keys("schema.md", "Message objects") == list(data["tlstiming.messages"][0])
    assert _table_keys("schema.md", "Record objects") == list(data["tlstiming.records"][0])
    assert _table_keys("schema.md", "Certificate objects") == list(data["tls.server.chain"][0])
    assert data["tlstiming.schema"] == tlstiming.SCHEMA_VERSION
    assert _table_keys("schema.md", "Verification objects") == [
        "name",
        "start_ns",
        "duration_ns",
        "outcome",
        "reason",
        "details",
    ]
    assert (
        f"Schema version: **{tlstiming.SCHEMA_VERSION}**" in (ROOT / "docs/schema.md").read_text()
    )


def _api_section(module: str) -> list[str]:
    text = (ROOT / "docs" / "api.md").read_text()
    section = text.split(f"## `{module}`\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", section, re.MULTILINE)


@pytest.mark.parametrize(
    "module",
    [
        "tlstiming",
        "tlstiming.sinks",
        "tlstiming.verifiers",
        "tlstiming.diagnosis",
        "tlstiming.stapling",
    ],
)
def test_api_doc_matches_all(module: str) -> None:
    imported = importlib.import_module(module)
    assert sorted(_api_section(module)) == sorted(imported.__all__)
    for name in imported.__all__:
        assert hasattr(imported, name)


def test_every_phase_name_is_documented(real_span: tlstiming.HandshakeSpan) -> None:
    concepts = (ROOT / "docs" / "concepts.md").read_text()
    for name in PHASE_NAMES:
        assert f"| `{name}` |" in concepts, name
    assert {p.name for p in real_span.phases} <= set(PHASE_NAMES)


def test_import_does_not_pull_optional_integrations() -> None:
    import subprocess
    import sys

    code = (
        "import sys, tlstiming; "
        "print(sorted(m for m in ('httpx', 'structlog', 'opentelemetry') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_public_name_resolves_lazily() -> None:
    import subprocess
    import sys

    code = (
        "import sys, tlstiming; "
        "assert 'tlstiming.context' not in sys.modules; "
        "names = [getattr(tlstiming, n) for n in tlstiming.__all__]; "
        "assert 'tlstiming.context' in sys.modules; "
        "assert sorted(dir(tlstiming)) == sorted(set(dir(tlstiming)) | set(tlstiming.__all__))"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        tlstiming.nope  # noqa: B018
