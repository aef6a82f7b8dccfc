"""``tlstiming bench``, in-process, against real loopback servers: heatmap, reports, exits."""

from __future__ import annotations

import _thread
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from conftest import ServeFactory
from servers import GUARD, PKI, server_context

from tlstiming.cli import bench, bench_workers, main
from tlstiming.cli.bench_html import bench_html
from tlstiming.cli.bench_stats import Bench
from tlstiming.cli.bench_text import heatmap_lines
from tlstiming.cli.heatmap import COLUMNS, ROWS, heatmap
from tlstiming.cli.probe import probe_once
from tlstiming.diagnosis import Finding

HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture
def ca_file(pki: PKI, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    path.write_bytes(pki.ca.cert_pem.bytes())
    return str(path)


@pytest.fixture
def target(serve: ServeFactory, pki: PKI, ca_file: str) -> list[str]:
    """A healthy https server (h2 offered and selected): the target and its CA."""
    server = serve(server_context(pki.leaf, alpn=["h2", "http/1.1"]))
    return [f"https://localhost:{server.address[1]}/", "--cafile", ca_file]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def bench_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    code, out, err = run(["bench", *argv, "--json"], capsys)
    assert out.count("\n") == 1, out  # exactly one document, on one line
    assert err == ""  # no progress bar, no text
    return code, json.loads(out)


def max_overlap(runs: list[dict[str, Any]]) -> int:
    """The most probes that were in flight at one instant (an end before a start at a tie)."""
    events = sorted(
        [(r["start_ms"], 1) for r in runs] + [(r["start_ms"] + r["total_ms"], -1) for r in runs]
    )
    level = top = 0
    for _, step in events:
        level += step
        top = max(top, level)
    return top


# -- counts, percentiles, one JSON document -----------------------------------------------


def test_counts_failures_and_percentiles_add_up(
    target: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, document = bench_json([*target, "-n", "12", "-c", "3"], capsys)
    assert code == document["exit_code"] in (0, 1)  # 1: a loaded machine can look slow
    assert document["count"] == len(document["runs"]) == 12
    assert document["ok"] + document["failed"] == document["count"]
    assert sum(document["failures"].values()) == document["failed"] == 0
    assert {r["worker"] for r in document["runs"]} == {0, 1, 2}
    assert sum(map(sum, document["heatmap"]["counts"])) == document["ok"]
    for name, p in document["percentiles_ms"].items():
        assert p["p50"] <= p["p90"] <= p["p99"] <= p["max"], name
    assert document["percentiles_ms"]["tls"]["max"] <= document["percentiles_ms"]["total"]["max"]
    assert all(f["severity"] != "error" for f in document["findings"])


def test_every_failure_is_counted_by_kind_and_exits_3(
    serve: ServeFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve(mode="not_tls")
    code, document = bench_json([f"localhost:{server.address[1]}", "-n", "5", "-c", "2"], capsys)
    assert code == 3
    assert document["count"] == 5
    assert document["failures"] == {"tls": 5}
    assert document["percentiles_ms"] == {}
    findings = {f["id"]: f for f in document["findings"]}
    assert findings["tls.not_tls_peer"]["probes"] == 5  # one finding, found in every probe


def test_findings_at_warning_exit_1_once_per_id(
    serve: ServeFactory, pki: PKI, ca_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve(server_context(pki.leaf, ecdh_curve="secp384r1"))
    target = [f"localhost:{server.address[1]}", "--cafile", ca_file]
    code, document = bench_json([*target, "-n", "4", "-c", "2"], capsys)
    assert code == 1
    ids = [f["id"] for f in document["findings"]]
    assert ids.count("tls.hello_retry") == 1
    assert next(f["probes"] for f in document["findings"] if f["id"] == "tls.hello_retry") == 4
    # The bench's own choices (no session offered, a context per worker) are no findings.
    assert "tls.no_resumption" not in ids
    assert "tls.trust_store_per_connection" not in ids


def test_more_workers_than_probes(target: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, document = bench_json([*target, "-n", "2", "-c", "8"], capsys)
    assert code == 0
    assert document["count"] == 2


# -- workers: concurrency and resumption ---------------------------------------------------


def _meeting_server(serve: ServeFactory, pki: PKI, parties: int) -> int:
    """A server whose handshakes wait in the SNI callback until ``parties`` are all inside."""
    meeting = threading.Barrier(parties)
    context = server_context(pki.leaf)

    def meet(*_: object) -> None:
        meeting.wait(GUARD)

    context.sni_callback = meet
    return int(serve(context).address[1])


@pytest.mark.parametrize("concurrency", [1, 4])
def test_concurrency_really_overlaps(
    concurrency: int,
    serve: ServeFactory,
    pki: PKI,
    ca_file: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = _meeting_server(serve, pki, concurrency)
    argv = [f"localhost:{port}", "--cafile", ca_file, "-n", str(2 * concurrency)]
    _code, document = bench_json([*argv, "-c", str(concurrency)], capsys)
    assert document["failed"] == 0, document  # (waiting at the meeting can be a slow server)
    assert max_overlap(document["runs"]) == concurrency


def test_resume_resumes_each_workers_own_session(
    target: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    _code, document = bench_json([*target, "-n", "6", "-c", "2", "--resume"], capsys)
    assert document["failed"] == 0
    for worker in (0, 1):
        resumed = [r["resumed"] for r in document["runs"] if r["worker"] == worker]
        assert resumed[0] is False
        assert all(resumed[1:]), resumed
    _code, document = bench_json([*target, "-n", "4", "-c", "2"], capsys)
    assert not any(r["resumed"] for r in document["runs"])


# -- the text report and the heatmap -------------------------------------------------------

GRID = re.compile(r"^ *\S+ m?s \|(.*)\|$")


def test_the_text_report_has_a_heatmap_of_the_expected_size(
    target: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["bench", *target, "-n", "10", "-c", "2"], capsys)
    assert code in (0, 1), out
    assert err == ""  # not a terminal: no progress bar
    grid = [m.group(1) for line in out.splitlines() if (m := GRID.match(line))]
    assert len(grid) == ROWS
    assert {len(row) for row in grid} == {COLUMNS}
    assert sum(row.count(" ") for row in grid) < ROWS * COLUMNS  # some cells are shaded
    assert "probes per cell:" in out
    assert "10 of 10 probes" in out
    assert re.search(r"total +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+", out)
    assert "findings:" in out


def test_heatmap_counts_points_into_log_rows() -> None:
    heat = heatmap([(0.0, 1.0), (0.5, 10.0), (0.99, 100.0)], span_s=1.0, columns=2, rows=2)
    assert heat.counts == ((1, 0), (0, 2))
    assert heat.latency_edges_ms[0] == pytest.approx(1.0)
    assert heat.latency_edges_ms[1] == pytest.approx(10.0)
    assert heat.time_edges_s == (0.0, 0.5, 1.0)
    assert [heat.level(c) for c in (0, 1, 2)] == [0, 2, 4]
    assert heat.level_ranges() == [(2, 1, 1), (4, 2, 2)]
    lines = [line.plain for line in heatmap_lines(heat)]
    assert len([line for line in lines if GRID.match(line)]) == 2


@pytest.mark.parametrize("points", [[], [(0.1, 5.0)], [(0.1, 5.0), (0.2, 5.0)]])
def test_heatmap_of_nothing_or_equal_latencies_has_a_range(
    points: list[tuple[float, float]],
) -> None:
    heat = heatmap(points, span_s=0.0, columns=3, rows=4)
    low, high = heat.latency_edges_ms[0], heat.latency_edges_ms[-1]
    assert 0 < low < high
    assert heat.total == len(points)
    assert all(low <= ms <= high for _, ms in points)


# -- reports -------------------------------------------------------------------------------

ASSET = re.compile(
    r"""(?:src|href)\s*=\s*["']?\s*(?:https?:|//)|url\(|@import|<link|<script""", re.I
)


def inline_svgs(page: str) -> list[ET.Element]:
    return [ET.fromstring(svg) for svg in re.findall(r"<svg\b.*?</svg>", page, re.S)]


def test_html_is_self_contained_and_escapes_a_hostile_alpn(
    serve: ServeFactory, pki: PKI, ca_file: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve(server_context(pki.leaf, alpn=[HOSTILE]))
    report = tmp_path / "report.html"
    argv = [f"https://localhost:{server.address[1]}/", "--cafile", ca_file, "-n", "3"]
    code, _out, _err = run(
        ["bench", *argv, "--alpn", f"h2,{HOSTILE}", "--html", str(report)], capsys
    )
    assert code == 1  # h2 offered first, not selected: a warning
    page = report.read_text("utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert not ASSET.search(page)
    assert "tls.alpn_h2_not_selected" in page
    assert HOSTILE not in page and "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert len(inline_svgs(page)) == 3  # heatmap, phase breakdown, waterfall; well-formed


def test_html_escapes_peer_text_in_findings() -> None:
    finding = Finding(
        id="tls.certificate_hostname_mismatch",
        severity="error",
        title='certificate for <script>alert("x")</script>\x1b[2J',
        evidence=(("certificate_names", ("<b>evil</b>", "a&b")),),
        hint="serve <i>this</i>",
        side="server",
    )
    empty = Bench(
        target="example.com:443", requested=1, concurrency=1, resume=False, start_ns=0,
        elapsed_ns=0, runs=(),
    )  # fmt: skip
    page = bench_html(empty, [(finding, 1)], heatmap([], span_s=0, columns=4, rows=3))
    assert "<script" not in page and "<b>" not in page and "<i>" not in page
    assert "\x1b" not in page
    assert "&lt;script&gt;" in page and "a&amp;b" in page
    assert "tls.certificate_hostname_mismatch" in page
    assert len(inline_svgs(page)) == 1  # no successful probe: the heatmap only


def test_svg_and_png_are_written_and_readable(
    target: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = pytest.importorskip("matplotlib.image")
    svg, png = tmp_path / "bench.svg", tmp_path / "bench.png"
    code, _out, _err = run(
        ["bench", *target, "-n", "6", "-c", "2", "--svg", str(svg), "--png", str(png)], capsys
    )
    assert code == 0
    assert svg.stat().st_size > 0 and png.stat().st_size > 0
    assert ET.parse(svg).getroot().tag.endswith("svg")
    pixels = image.imread(str(png))
    assert pixels.ndim == 3 and pixels.shape[0] > 500 and pixels.shape[1] > 500


def test_charts_without_matplotlib_are_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    code, out, err = run(["bench", "localhost:1", "--png", str(tmp_path / "x.png")], capsys)
    assert code == 2
    assert "tlstiming[plot]" in err and "Traceback" not in err
    assert len(err.splitlines()) == 1 and out == ""
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    "extra",
    [
        ["-n", "0"],
        ["-c", "0"],
        ["-n", "x"],
        ["--html", "/nonexistent/dir/report.html"],
        ["--html", "."],
        ["--svg", ""],
    ],
    ids=" ".join,
)
def test_usage_errors_are_one_line_and_exit_2(
    extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["bench", "localhost:1", *extra], capsys)
    assert code == 2
    assert out == "" and "Traceback" not in err
    assert len(err.splitlines()) == 1 and err.startswith("tlstiming: error:")


# -- the terminal: progress on stderr only; Ctrl-C ------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("flags", [[], ["--no-progress"], ["--json"]])
def test_the_progress_bar_goes_to_a_terminal_stderr_only(
    flags: list[str], target: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stdout, stderr = _Terminal(), _Terminal()
    monkeypatch.setattr(sys, "stdout", stdout)
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["bench", *target, "-n", "4", *flags]) in (0, 1)
    assert "━" not in stdout.getvalue()  # the bar's character
    assert ("━" in stderr.getvalue()) is (flags == [])
    if flags == ["--json"]:
        assert json.loads(stdout.getvalue())["count"] == 4


@pytest.mark.parametrize("as_json", [False, True])
def test_ctrl_c_stops_and_reports_what_finished(
    as_json: bool,
    target: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real = probe_once
    calls = 0

    def probe_then_interrupt(*args: Any) -> Any:
        nonlocal calls
        result = real(*args)
        calls += 1
        if calls == 3:
            _thread.interrupt_main()  # as if Ctrl-C were pressed now
        return result

    monkeypatch.setattr(bench_workers, "probe_once", probe_then_interrupt)
    argv = ["bench", *target, "-n", "100000", "-c", "1"]
    code, out, _err = run([*argv, "--json"] if as_json else argv, capsys)
    assert code == bench.INTERRUPTED
    if as_json:
        document = json.loads(out)
        assert document["interrupted"] is True
        assert 3 <= document["count"] < 100000
        assert document["exit_code"] == bench.INTERRUPTED
    else:
        assert "interrupted" in out and "percentiles" in out


# -- the pictures in docs/images -----------------------------------------------------------

IMAGES = Path(__file__).parent.parent / "docs" / "images"


@pytest.mark.skipif(
    not os.environ.get("TLSTIMING_DOCS_IMAGES"),
    reason="regenerates docs/images: set TLSTIMING_DOCS_IMAGES=1",
)
def test_regenerate_the_docs_images(
    serve: ServeFactory, pki: PKI, ca_file: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bench of a server that forces a HelloRetryRequest, drawn as the docs show it."""
    from rich.console import Console

    from tlstiming.cli import bench_stats, charts

    pytest.importorskip("matplotlib")
    drawn: dict[str, Any] = {}
    real_render = charts.render

    def keep(b: Bench, heat: Any, form: str, panels: tuple[str, ...] = charts.PANELS) -> bytes:
        drawn.update(bench=b, heat=heat)
        return real_render(b, heat, form, panels)

    monkeypatch.setattr(charts, "render", keep)
    server = serve(server_context(pki.leaf, alpn=["http/1.1"], ecdh_curve="secp384r1"))
    report = tmp_path / "bench-report.html"
    argv = [f"https://localhost:{server.address[1]}/", "--cafile", ca_file, "-n", "400", "-c", "4"]
    main(["bench", *argv, "--html", str(report), "--png", str(tmp_path / "all.png")])
    heat = bench_stats.bench_heatmap(drawn["bench"])
    (IMAGES / "bench-heatmap.png").write_bytes(
        real_render(drawn["bench"], heat, "png", ("heatmap",))
    )
    phases = real_render(drawn["bench"], heat, "png", ("phases", "waterfall"))
    (IMAGES / "bench-phases.png").write_bytes(phases)
    terminal = Console(record=True, file=io.StringIO(), width=90, force_terminal=True)
    for line in heatmap_lines(bench_stats.bench_heatmap(drawn["bench"], columns=70)):
        terminal.print(line)
    (tmp_path / "terminal.svg").write_text(terminal.export_svg(title="tlstiming bench"))
    screenshot(report, IMAGES / "bench-report.png", 2700)
    screenshot(tmp_path / "terminal.svg", IMAGES / "bench-terminal.png", 420, 860)


def screenshot(page: Path, png: Path, height: int, width: int = 1000) -> None:
    """``page`` as a PNG, by a headless Chromium (when there is one: the docs only)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        return
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--window-size={width},{height}", f"--screenshot={png}", page.as_uri()],
        check=True, capture_output=True, timeout=GUARD,
    )  # fmt: skip
