"""One-call TLS timing for ASGI servers: hypercorn and uvicorn.

Each function returns the server's own ``Config`` whose TLS context is a
:class:`~tlstiming.TimedSSLContext` built with exactly the settings the
server would have used, so every inbound handshake becomes a server-side
span carrying the client's address and port. Spans go to ``sinks`` and to
every sink added with :func:`tlstiming.subscribe`.

Needs the ``servers`` extra (``pip install tlstiming[servers]``) or the
server itself installed.
"""

from __future__ import annotations

import inspect
import ssl
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from tlstiming._recording.context import TimedSSLContext, create_default_context
from tlstiming._recording.peer import set_peer
from tlstiming.spans.handshake import Sink

if TYPE_CHECKING:
    import hypercorn.config
    import uvicorn

__all__ = ["hypercorn_config", "set_peer", "uvicorn_config"]


def hypercorn_config(
    *,
    certfile: str,
    keyfile: str,
    sinks: Iterable[Sink] = (),
    ocsp_stapling: bool = False,
    **options: Any,
) -> hypercorn.config.Config:
    """A hypercorn ``Config`` serving TLS through a :class:`~tlstiming.TimedSSLContext`.

    Args:
        certfile: the server's certificate chain (PEM), as hypercorn's ``certfile``.
        keyfile: its private key (PEM), as hypercorn's ``keyfile``.
        sinks: called with every inbound handshake span.
        ocsp_stapling: staple the certificate's OCSP response, kept fresh by
            an :class:`~tlstiming.stapling.OCSPStapler` built from
            ``certfile`` (the leaf, then its issuer) in each process that
            serves (native hooks only).
        **options: any other ``Config`` attribute (``bind``, ``ca_certs``,
            ``verify_mode``, ``alpn_protocols``, ``ciphers``...).

    Returns:
        A ``hypercorn.config.Config`` (a subclass whose ``create_ssl_context``
        builds the timed context, with hypercorn's settings).

    Raises:
        ImportError: hypercorn is not installed.
        AttributeError: an option hypercorn's ``Config`` does not have.
        NotImplementedError: ``ocsp_stapling`` where native hooks are off.
        ValueError: ``ocsp_stapling`` with a ``certfile`` that cannot be stapled for
            (no issuer after the leaf, no OCSP responder in the leaf).
    """
    _check_stapling(ocsp_stapling, certfile)
    config: Any = _hypercorn_config_class()()
    config._tlstiming_sinks = tuple(sinks)
    config._tlstiming_ocsp_stapling = ocsp_stapling
    config.certfile, config.keyfile = certfile, keyfile
    for name, value in options.items():
        if not hasattr(config, name):
            raise AttributeError(f"hypercorn's Config has no option {name!r}")
        setattr(config, name, value)
    timed: hypercorn.config.Config = config
    return timed


_CLASSES: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    # The hypercorn subclass is built on first use (hypercorn is optional) but has a
    # module-level name, so that a Config pickled for hypercorn's worker processes loads.
    if name == "_TimedHypercornConfig":
        return _hypercorn_config_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _hypercorn_config_class() -> Any:
    if "hypercorn" in _CLASSES:
        return _CLASSES["hypercorn"]
    try:
        from hypercorn.config import Config  # noqa: PLC0415
    except ImportError as exc:
        raise ImportError(
            "tlstiming.servers.hypercorn_config needs hypercorn: pip install 'tlstiming[servers]'"
        ) from exc

    class TimedConfig(Config):
        """hypercorn's ``Config`` whose TLS context is a ``TimedSSLContext``."""

        _tlstiming_sinks: tuple[Sink, ...] = ()
        _tlstiming_ocsp_stapling: bool = False

        def create_ssl_context(self) -> ssl.SSLContext | None:
            # hypercorn.config.Config.create_ssl_context, on a TimedSSLContext.
            if self.certfile is None or self.keyfile is None:
                return None
            context = create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.set_ciphers(self.ciphers)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.options = ssl.OP_NO_COMPRESSION
            context.set_alpn_protocols(self.alpn_protocols)
            context.load_cert_chain(
                certfile=self.certfile, keyfile=self.keyfile, password=self.keyfile_password
            )
            if self.ca_certs is not None:
                context.load_verify_locations(self.ca_certs)
            if self.verify_mode is not None:
                context.verify_mode = self.verify_mode
            if self.verify_flags is not None:
                context.verify_flags = self.verify_flags
            if self._tlstiming_ocsp_stapling:
                _staple(context, self.certfile)
            return _with_sinks(context, self._tlstiming_sinks)

    TimedConfig.__name__ = TimedConfig.__qualname__ = "_TimedHypercornConfig"
    _CLASSES["hypercorn"] = TimedConfig
    return TimedConfig


def uvicorn_config(
    app: Any,
    *,
    ssl_certfile: str,
    ssl_keyfile: str | None = None,
    sinks: Iterable[Sink] = (),
    ocsp_stapling: bool = False,
    **options: Any,
) -> uvicorn.Config:
    """A ``uvicorn.Config`` serving TLS through a :class:`~tlstiming.TimedSSLContext`.

    Uses uvicorn's own seam, ``ssl_context_factory`` (uvicorn 0.47 and
    later): the context gets the settings uvicorn would give its own
    (``ssl_version``, ``ssl_cert_reqs``, ``ssl_ca_certs``, ``ssl_ciphers``,
    the protocol's ALPN list).

    Args:
        app: the ASGI application (or its import string), as ``uvicorn.Config``.
        ssl_certfile: the server's certificate chain (PEM).
        ssl_keyfile: its private key (PEM), if not in ``ssl_certfile``.
        sinks: called with every inbound handshake span.
        ocsp_stapling: staple the certificate's OCSP response, kept fresh by
            an :class:`~tlstiming.stapling.OCSPStapler` built from
            ``ssl_certfile`` (the leaf, then its issuer) in each process that
            serves (native hooks only).
        **options: any other ``uvicorn.Config`` keyword (``host``, ``port``,
            ``ssl_cert_reqs``, ``ssl_ca_certs``, ``log_level``...).

    Returns:
        The ``uvicorn.Config``; pass it to ``uvicorn.Server``.

    Raises:
        ImportError: uvicorn is not installed, or older than 0.47.
        NotImplementedError: ``ocsp_stapling`` where native hooks are off.
        ValueError: ``ocsp_stapling`` with a certificate file that cannot be
            stapled for (no issuer after the leaf, no OCSP responder in the leaf).
    """
    try:
        import uvicorn  # noqa: PLC0415
    except ImportError as exc:
        raise ImportError(
            "tlstiming.servers.uvicorn_config needs uvicorn: pip install 'tlstiming[servers]'"
        ) from exc
    if "ssl_context_factory" not in inspect.signature(uvicorn.Config).parameters:
        raise ImportError("tlstiming.servers.uvicorn_config needs uvicorn 0.47 or later")
    _check_stapling(ocsp_stapling, ssl_certfile)
    return uvicorn.Config(
        app,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        ssl_context_factory=_UvicornContext(tuple(sinks), ocsp_stapling),
        **options,
    )


class _UvicornContext:
    """uvicorn's ``ssl_context_factory``: its ``create_ssl_context``, on a TimedSSLContext.

    A class, not a closure, so that a config pickled for uvicorn's workers loads.
    """

    __slots__ = ("ocsp_stapling", "sinks")

    def __init__(self, sinks: tuple[Sink, ...], ocsp_stapling: bool = False) -> None:
        self.sinks = sinks
        self.ocsp_stapling = ocsp_stapling

    def __call__(self, config: Any, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        context = TimedSSLContext(config.ssl_version)
        password = config.ssl_keyfile_password
        context.load_cert_chain(
            config.ssl_certfile, config.ssl_keyfile, (lambda: password) if password else None
        )
        context.verify_mode = ssl.VerifyMode(config.ssl_cert_reqs)
        if config.ssl_ca_certs:
            context.load_verify_locations(config.ssl_ca_certs)
        if config.ssl_ciphers:
            context.set_ciphers(config.ssl_ciphers)
        alpn = getattr(config.http_protocol_class, "alpn_protocols", None)
        if alpn:
            context.set_alpn_protocols(alpn)
        if self.ocsp_stapling:
            _staple(context, config.ssl_certfile)
        return _with_sinks(context, self.sinks)


def _with_sinks(context: TimedSSLContext, sinks: Iterable[Sink]) -> TimedSSLContext:
    for sink in sinks:
        context.add_sink(sink)
    return context


def _check_stapling(on: object, certfile: str) -> None:
    """Refuse ``ocsp_stapling`` at the call that asks for it, not in a worker later."""
    if not isinstance(on, bool):
        raise TypeError(f"ocsp_stapling must be a bool, not {type(on).__name__}")
    if on:
        from tlstiming._recording import native  # noqa: PLC0415
        from tlstiming.stapling import OCSPStapler  # noqa: PLC0415

        native.openssl("OCSP stapling")  # NotImplementedError with the reason
        OCSPStapler.from_certfile(certfile).close()  # the chain and its responder check out


def _staple(context: TimedSSLContext, certfile: str) -> None:
    """Staple the certificate's OCSP response, fetched and refreshed by a stapler of its own."""
    from tlstiming.stapling import OCSPStapler  # noqa: PLC0415

    stapler = OCSPStapler.from_certfile(certfile).start()  # a daemon thread: lives with the process
    context.set_ocsp_staple(stapler)
