"""What a user types, checked: targets, ports, names, files and option values.

Every check raises :class:`UsageError` with one line that names what is wrong;
the command prints it and exits 2, never a traceback.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import urllib.parse
from dataclasses import dataclass
from typing import Final

__all__ = [
    "TLS_VERSIONS",
    "Target",
    "UsageError",
    "parse_alpn",
    "parse_count",
    "parse_resolve",
    "parse_seconds",
    "parse_slo",
    "parse_target",
    "parse_version",
    "readable_file",
]

TLS_VERSIONS: Final = ("1.0", "1.1", "1.2", "1.3")
_LABEL: Final = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
_MAX_NAME: Final = 253


class UsageError(ValueError):
    """A bad argument: the message is one line for the user."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where to probe.

    Attributes:
        host: a DNS name or an IP address (IPv6 without brackets).
        port: 1-65535.
        scheme: ``https`` (send an HTTP request after the handshake), or
            ``tls`` for a bare ``host:port`` (handshake, then wait briefly
            for a post-handshake verdict).
        path: the request target for https (path and query; the query is
            sent but never shown).
    """

    host: str
    port: int
    scheme: str = "tls"
    path: str = "/"

    @property
    def shown(self) -> str:
        """For people and logs: no credentials, no query string."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.scheme == "https":
            return f"https://{host}:{self.port}{self.path.split('?', 1)[0]}"
        return f"{host}:{self.port}"

    @property
    def is_ip(self) -> bool:
        return _is_ip(self.host)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def check_hostname(name: str, what: str = "host") -> str:
    """A DNS name (or IP address) as the resolver and SNI accept it.

    Raises:
        UsageError: empty, too long, bad characters or labels.
    """
    if _is_ip(name):
        return name
    if not name:
        raise UsageError(f"the {what} is empty")
    try:
        ascii_name = name.encode("idna").decode("ascii") if not name.isascii() else name
    except UnicodeError:
        raise UsageError(f"the {what} {name!r} is not a valid host name") from None
    if len(ascii_name.rstrip(".")) > _MAX_NAME:
        raise UsageError(f"the {what} is longer than {_MAX_NAME} characters")
    labels = ascii_name.rstrip(".").split(".")
    if not all(_LABEL.match(label) for label in labels):
        raise UsageError(f"the {what} {name!r} is not a valid host name")
    return name


def parse_port(text: str, what: str = "port") -> int:
    """1-65535, decimal digits only."""
    if not text.isdigit() or not text.isascii():
        raise UsageError(f"the {what} {text!r} is not a number")
    port = int(text)
    if not 1 <= port <= 65535:
        raise UsageError(f"the {what} {port} is out of range (1-65535)")
    return port


def parse_target(text: str) -> Target:
    """``https://host[:port]/path``, ``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address.

    Raises:
        UsageError: a malformed URL, an unsupported scheme, a bad host or port.
    """
    text = text.strip()
    if not text:
        raise UsageError("no target given (HOST, HOST:PORT or https://HOST/)")
    if "://" in text:
        return _parse_url(text)
    if _is_ip(text):  # a bare IPv6 (or IPv4) address
        return Target(text, 443)
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not _is_ip(host) or ":" not in host:
            raise UsageError(f"{text!r}: brackets hold an IPv6 address, as in [::1]:8443")
        if rest and not rest.startswith(":"):
            raise UsageError(f"{text!r}: expected [IPv6]:PORT")
        return Target(host, parse_port(rest[1:]) if rest else 443)
    host, sep, port = text.rpartition(":")
    if not sep:
        return Target(check_hostname(text), 443)
    if ":" in host:
        raise UsageError(f"{text!r}: write an IPv6 address with a port as [ADDRESS]:PORT")
    return Target(check_hostname(host), parse_port(port))


def _parse_url(text: str) -> Target:
    try:
        url = urllib.parse.urlsplit(text)
        port = url.port
    except ValueError as exc:
        raise UsageError(f"not a valid URL: {exc}") from None
    if url.scheme not in ("https",):
        hint = " (tlstiming probes TLS: use https://)" if url.scheme == "http" else ""
        raise UsageError(f"unsupported URL scheme {url.scheme!r}{hint}")
    host = url.hostname or ""
    if not host:
        raise UsageError("the URL has no host")
    if port is not None and not 1 <= port <= 65535:
        raise UsageError(f"the port {port} is out of range (1-65535)")
    if port == 0:
        raise UsageError("the port 0 is out of range (1-65535)")
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    if any(c in path for c in "\r\n\x00 "):
        raise UsageError("the URL path holds spaces or control characters")
    return Target(check_hostname(host), port or 443, "https", path)


def parse_seconds(text: str, what: str = "--timeout") -> float:
    """A finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{what} {text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{what} must be a finite number of seconds > 0, not {text}")
    if value > 86_400:
        raise UsageError(f"{what} {text} is more than a day")
    return value


def parse_count(text: str, what: str = "--count", limit: int = 100_000) -> int:
    """A whole number from 1 to ``limit``."""
    if not text.strip().isdigit() or not text.isascii():
        raise UsageError(f"{what} {text!r} is not a whole number")
    value = int(text)
    if not 1 <= value <= limit:
        raise UsageError(f"{what} must be between 1 and {limit}, not {value}")
    return value


def parse_alpn(text: str) -> tuple[str, ...]:
    """A comma-separated ALPN offer; ``""`` or ``none`` offers nothing."""
    if text.strip().lower() in ("", "none"):
        return ()
    protocols = tuple(p.strip() for p in text.split(","))
    for protocol in protocols:
        if not protocol:
            raise UsageError(f"--alpn {text!r} has an empty protocol name")
        if len(protocol.encode()) > 255 or not protocol.isprintable():
            raise UsageError(f"--alpn protocol {protocol!r} is not a valid ALPN name")
    return protocols


def parse_version(text: str, what: str) -> str:
    """``1.0``-``1.3`` (``TLSv1.2`` and ``tls1.2`` are accepted too)."""
    cleaned = text.strip().lower().removeprefix("tlsv").removeprefix("tls")
    if cleaned not in TLS_VERSIONS:
        raise UsageError(f"{what} must be one of {', '.join(TLS_VERSIONS)}, not {text!r}")
    return cleaned


def parse_resolve(text: str) -> tuple[str, int, str]:
    """``HOST:PORT:ADDRESS`` (as curl's ``--resolve``); IPv6 addresses may be bracketed."""
    host, sep, rest = text.partition(":")
    port, sep2, address = rest.partition(":")
    if not sep or not sep2:
        raise UsageError(f"--resolve {text!r}: expected HOST:PORT:ADDRESS")
    address = address.strip("[]")
    if not _is_ip(address):
        raise UsageError(f"--resolve {text!r}: {address!r} is not an IP address")
    return check_hostname(host, "--resolve host"), parse_port(port, "--resolve port"), address


def parse_slo(text: str) -> dict[str, float]:
    """``phase=ms,...``: the most each phase (or ``total``) may take, in milliseconds."""
    out: dict[str, float] = {}
    for item in text.split(","):
        name, sep, limit = item.strip().partition("=")
        if not sep or not name:
            raise UsageError(f"--slo {item.strip()!r}: expected PHASE=MS (e.g. total=200,tls=50)")
        try:
            value = float(limit)
        except ValueError:
            raise UsageError(f"--slo {name}: {limit!r} is not a number of milliseconds") from None
        if not math.isfinite(value) or value < 0:
            raise UsageError(f"--slo {name}: {limit} must be a finite number >= 0")
        out[name] = value
    return out


def readable_file(path: str, what: str) -> str:
    """An existing, readable regular file.

    Raises:
        UsageError: missing, a directory, unreadable.
    """
    if not path:
        raise UsageError(f"{what}: empty path")
    if not os.path.exists(path):
        raise UsageError(f"{what} {path!r}: no such file")
    if not os.path.isfile(path):
        raise UsageError(f"{what} {path!r}: not a regular file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{what} {path!r}: not readable")
    return path
