"""The server context :class:`~tlstiming.testing.LocalTLSServer` serves with, for any server."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import Final, Literal

from tlstiming.testing.ca import CA, LeafCert

__all__ = ["ClientCert", "Version", "server_context"]

_VERSIONS: Final = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}

ClientCert = Literal["required", "optional"]
Version = str | ssl.TLSVersion
"""``"1.2"``, ``"1.3"`` or an ``ssl.TLSVersion``."""


def _version(value: Version) -> ssl.TLSVersion:
    if isinstance(value, ssl.TLSVersion):
        return value
    if value not in _VERSIONS:
        raise ValueError(f"TLS version must be one of {sorted(_VERSIONS)}, not {value!r}")
    return _VERSIONS[value]


def server_context(
    cert: LeafCert,
    *,
    context_class: type[ssl.SSLContext] = ssl.SSLContext,
    tls_min: Version | None = None,
    tls_max: Version | None = None,
    alpn: Sequence[str] | None = None,
    client_ca: CA | None = None,
    client_cert: ClientCert = "required",
    group: str | None = None,
    send_intermediate: bool = True,
) -> ssl.SSLContext:
    """A server context presenting ``cert``: what :class:`LocalTLSServer` serves with.

    Args:
        cert: the server certificate.
        context_class: e.g. :class:`~tlstiming.TimedSSLContext`, for server-side spans.
        tls_min: lowest TLS version accepted (``"1.2"``, ``"1.3"`` or an ``ssl.TLSVersion``).
        tls_max: highest TLS version accepted.
        alpn: the protocols the server supports, in preference order.
        client_ca: ask for a client certificate issued by this CA.
        client_cert: with ``client_ca``: ``"required"`` or ``"optional"``.
        group: the only key-exchange group accepted (``secp384r1`` sends a
            HelloRetryRequest to a client offering only an X25519 key share).
        send_intermediate: ``False`` presents the leaf alone (a broken chain).

    Raises:
        ValueError: for an unknown TLS version or ``client_cert`` value.
    """
    context = context_class(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context, send_chain=send_intermediate)
    if tls_min is not None:
        context.minimum_version = _version(tls_min)
    if tls_max is not None:
        context.maximum_version = _version(tls_max)
    if alpn:
        context.set_alpn_protocols(list(alpn))
    if client_ca is not None:
        if client_cert not in ("required", "optional"):
            raise ValueError(f"client_cert must be 'required' or 'optional': {client_cert!r}")
        context.verify_mode = ssl.CERT_REQUIRED if client_cert == "required" else ssl.CERT_OPTIONAL
        client_ca.configure_trust(context)
    if group is not None:
        context.set_ecdh_curve(group)
    return context
