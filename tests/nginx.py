"""nginx on loopback, a real production TLS server with a real configuration, for the tests.

Skipped (by the tests' marker) where the ``nginx`` binary is missing; ``.ci/run``
installs it from Debian's packages.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Final

NGINX: Final = shutil.which("nginx") or (
    "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
)

_CONF: Final = """\
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
{user}
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl{http2};
        server_name localhost;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols {protocols};
        {extra}
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NginxServer:
    """``with NginxServer(cert_file, key_file, ...) as server:`` serves ``ok`` over HTTPS.

    Args:
        cert_file: the certificate chain file (PEM) nginx sends, leaf first.
        key_file: its key.
        protocols: ``ssl_protocols``.
        http2: offer h2 over ALPN.
        extra: more directives for the ``server`` block.
    """

    def __init__(
        self,
        cert_file: str,
        key_file: str,
        *,
        protocols: str = "TLSv1.2 TLSv1.3",
        http2: bool = True,
        extra: str = "",
    ) -> None:
        if NGINX is None:
            raise RuntimeError("nginx is not installed")
        self._dir = tempfile.mkdtemp(prefix="tlstiming-nginx-")
        self.port = _free_port()
        conf = _CONF.format(
            dir=self._dir,
            user="user root;" if os.geteuid() == 0 else "",
            port=self.port,
            http2=" http2" if http2 else "",
            cert=cert_file,
            key=key_file,
            protocols=protocols,
            extra=extra,
        )
        self._conf = Path(self._dir) / "nginx.conf"
        self._conf.write_text(conf)
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> NginxServer:
        self._process = subprocess.Popen(
            [str(NGINX), "-p", self._dir, "-c", str(self._conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                error = (self._process.stderr.read() if self._process.stderr else b"").decode()
                log = Path(self._dir) / "error.log"
                raise RuntimeError(
                    f"nginx exited: {error} {log.read_text() if log.exists() else ''}"
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        self.__exit__()
        raise RuntimeError("nginx did not start listening within 10 s")

    def __exit__(self, *exc: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGQUIT)
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
        if self._process is not None and self._process.stderr is not None:
            self._process.stderr.close()
        shutil.rmtree(self._dir, ignore_errors=True)
