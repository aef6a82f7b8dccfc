"""The httpx adapter's unpaired half: TLS contexts, proxies, sinks, a request's end.

The transports and clients themselves (``_async/httpx_client.py`` and its
generated twin ``_sync/httpx_client.py``) build on these; the public module
is :mod:`tlstiming.httpx`.
"""

from __future__ import annotations

import os
import ssl
import time
import warnings
from typing import Any

import httpcore
import httpx

from tlstiming._recording import delivery as _delivery
from tlstiming._recording.context import TimedSSLContext, create_default_context
from tlstiming._trace.recording import Recording, RequestSink, Sinks, perf
from tlstiming._trace.recording import adopt as _adopt
from tlstiming.spans.request import EXTENSION_KEY, RequestSpan

__all__ = [
    "DEFAULT_LIMITS",
    "RequestSink",
    "Sinks",
    "finish",
    "on_close",
    "pool_options",
    "proxy_context",
    "proxy_origin",
    "timed_ssl_context",
]

_unix = time.time_ns
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)  # httpx's


# -- TLS contexts ----------------------------------------------------------------


def timed_ssl_context(
    verify: ssl.SSLContext | str | bool | None = True,
    cert: Any = None,
    trust_env: bool = True,
) -> ssl.SSLContext:
    """``httpx.create_ssl_context`` semantics, returning a TimedSSLContext where it can.

    Args:
        verify: ``True``: certifi's CA bundle, or ``SSL_CERT_FILE`` /
            ``SSL_CERT_DIR`` when ``trust_env``; ``False``: no verification;
            ``None`` (which httpx hands on to httpcore): httpcore's default,
            the system's trust store plus certifi's bundle;
            a path (deprecated, as in httpx): that CA file or directory; a
            :class:`~tlstiming.TimedSSLContext`: used as is; a plain
            ``ssl.SSLContext``: used as is, **uninstrumented** (its settings
            cannot be copied faithfully: loaded client certificates, keys and
            some options are not readable back), noted once per context on
            the ``tlstiming`` logger (a warning would break callers that run
            with warnings as errors, which plain httpx does not).
        cert: a client certificate (deprecated in httpx), loaded into the context.
        trust_env: honour ``SSL_CERT_FILE``/``SSL_CERT_DIR``.

    Returns:
        The context the transport will use.
    """
    if verify is True:
        if trust_env and os.environ.get("SSL_CERT_FILE"):
            context: ssl.SSLContext = create_default_context(cafile=os.environ["SSL_CERT_FILE"])
        elif trust_env and os.environ.get("SSL_CERT_DIR"):
            context = create_default_context(capath=os.environ["SSL_CERT_DIR"])
        else:
            import certifi  # noqa: PLC0415

            context = create_default_context(cafile=certifi.where())
    elif verify is False:
        context = TimedSSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif verify is None:
        context = _httpcore_default_context()
    elif isinstance(verify, str):
        warnings.warn(
            "`verify=<str>` is deprecated. Use `verify=ssl.create_default_context(cafile=...)` "
            "or `verify=ssl.create_default_context(capath=...)` instead.",
            DeprecationWarning,
            stacklevel=3,
        )
        # As httpx 0.28 does: a path returns at once, so ``cert`` is not loaded.
        if os.path.isdir(verify):
            return _adopt(create_default_context(capath=verify))
        return _adopt(create_default_context(cafile=verify))
    else:
        context = _adopt(verify)
    if cert:
        warnings.warn(
            "`cert=...` is deprecated. Use `verify=<ssl_context>` instead,"
            "with `.load_cert_chain()` to configure the certificate chain.",
            DeprecationWarning,
            stacklevel=3,
        )
        context.load_cert_chain(*((cert,) if isinstance(cert, str) else cert))
    return _adopt(context)


def _httpcore_default_context() -> TimedSSLContext:
    """A timed twin of httpcore's ``default_ssl_context()``: system trust plus certifi."""
    import certifi  # noqa: PLC0415

    context = create_default_context()
    context.load_verify_locations(certifi.where())
    return context


# -- proxies and pools -----------------------------------------------------------


def proxy_context(proxy: Any) -> httpx.Proxy | None:
    """The transport's ``proxy=`` as an ``httpx.Proxy``; an HTTPS proxy gets a timed
    context with httpcore's default trust (system + certifi)."""
    given: httpx.Proxy | None = (
        httpx.Proxy(url=proxy) if isinstance(proxy, (str, httpx.URL)) else proxy
    )
    if given is None or given.url.scheme != "https":
        return given
    if given.ssl_context is not None:
        _adopt(given.ssl_context)
        return given
    context = _adopt(_httpcore_default_context())
    return httpx.Proxy(url=given.url, ssl_context=context, auth=given.auth, headers=given.headers)


def proxy_origin(proxy: httpx.Proxy) -> tuple[httpcore.URL, tuple[str, int]]:
    """The proxy's URL for httpcore, and the (host, port) its backend connects to."""
    url = httpcore.URL(
        scheme=proxy.url.raw_scheme,
        host=proxy.url.raw_host,
        port=proxy.url.port,
        target=proxy.url.raw_path,
    )
    return url, (url.origin.host.decode("ascii"), url.origin.port)


def pool_options(
    ssl_context: ssl.SSLContext, limits: httpx.Limits, http1: bool, http2: bool
) -> dict[str, Any]:
    """The arguments every pool ``httpx.HTTPTransport`` builds takes (proxies too)."""
    return {
        "ssl_context": ssl_context,
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
        "http1": http1,
        "http2": http2,
    }


# -- sinks and a request's end -----------------------------------------------------


def finish(
    transport: Sinks,
    rec: Recording,
    request: httpx.Request,
    response: httpx.Response | None,
    exc: BaseException | None,
) -> None:
    """The request ended early (an error, or the body never closed): seal and deliver."""
    if not rec.seal(perf(), _unix(), exc):
        return
    span = RequestSpan(rec)
    request.extensions[EXTENSION_KEY] = span
    if response is not None:
        response.extensions[EXTENSION_KEY] = span
    _delivery.deliver(transport, span)


def on_close(transport: Sinks, rec: Recording, response: httpx.Response) -> None:
    """The common end: the response was closed. One function, few steps (hot path)."""
    if rec.end_ns is not None:
        return
    end = rec.end_ns = perf()
    rec.end_unix_ns = _unix()
    stream = rec.stream
    if stream is not None:
        stream.last_end = end
        rec.stream = None
    span = response.extensions[EXTENSION_KEY] = RequestSpan(rec)
    if transport._tlstiming_sinks or _delivery.global_sinks:
        _delivery.deliver(transport, span)
