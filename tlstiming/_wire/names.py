"""The numbers that appear on the TLS wire, declared once, and their names.

The constants are what the code compares against (content types, handshake
types, alert levels, versions, the HelloRetryRequest random), with OpenSSL's
pseudo content types and the markers tlstiming adds to a handshake's events;
the C accelerator's copies are checked against them (tests/test_speedups.py).
Every table follows the IANA "Transport Layer Security (TLS) Parameters"
registries; names are spelled as IANA spells them (lower_snake for alerts,
handshake types, groups and signature schemes, upper case for cipher suites),
except that the registry's ``_RESERVED`` suffix on retired alert codes is
dropped (``no_certificate``, not ``no_certificate_RESERVED``). The lookup
functions never raise: unknown values get a readable fallback such as
``"unknown(0x1234)"``, and GREASE values (RFC 8701) are named ``"grease(0x0A0A)"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from typing import Final

__all__ = [
    "ALERT",
    "ALERT_DESCRIPTIONS",
    "APPLICATION_DATA",
    "CHAIN_END",
    "CHAIN_START",
    "CHANGE_CIPHER_SPEC",
    "CIPHER_SUITES",
    "CLOSE_NOTIFY",
    "CONTENT_TYPES",
    "ENTER",
    "EXIT",
    "EXTENSIONS",
    "FATAL",
    "HANDSHAKE",
    "HANDSHAKE_TYPES",
    "HEARTBEAT",
    "HELLO_RETRY_RANDOM",
    "INNER_CONTENT_TYPE",
    "NAMED_GROUPS",
    "RECORD_HEADER",
    "SIGNATURE_SCHEMES",
    "SNI_END",
    "SNI_START",
    "TLS1_2",
    "TLS1_3",
    "VERIFY_END",
    "VERIFY_START",
    "VERSIONS",
    "HandshakeType",
    "alert_level_name",
    "alert_name",
    "cipher_name",
    "extension_name",
    "group_name",
    "handshake_type_name",
    "is_grease",
    "signature_scheme_name",
    "version_name",
]

# -- numbers the code compares against ---------------------------------------


# Record content types (IANA "TLS ContentType"): plain ints, since the message
# callback compares with them for every record.
CHANGE_CIPHER_SPEC: Final = 20
ALERT: Final = 21
HANDSHAKE: Final = 22
APPLICATION_DATA: Final = 23
HEARTBEAT: Final = 24


class HandshakeType(IntEnum):
    """Handshake message types (IANA "TLS HandshakeType")."""

    HELLO_REQUEST = 0
    CLIENT_HELLO = 1
    SERVER_HELLO = 2
    HELLO_VERIFY_REQUEST = 3
    NEW_SESSION_TICKET = 4
    END_OF_EARLY_DATA = 5
    HELLO_RETRY_REQUEST = 6
    ENCRYPTED_EXTENSIONS = 8
    CERTIFICATE = 11
    SERVER_KEY_EXCHANGE = 12
    CERTIFICATE_REQUEST = 13
    SERVER_HELLO_DONE = 14
    CERTIFICATE_VERIFY = 15
    CLIENT_KEY_EXCHANGE = 16
    FINISHED = 20
    CERTIFICATE_URL = 21
    CERTIFICATE_STATUS = 22
    SUPPLEMENTAL_DATA = 23
    KEY_UPDATE = 24
    COMPRESSED_CERTIFICATE = 25
    EKT_KEY = 26
    MESSAGE_HASH = 254


# OpenSSL's pseudo content types in the message callback: a record's header
# (SSL3_RT_HEADER) and a TLS 1.3 record's inner content type
# (SSL3_RT_INNER_CONTENT_TYPE; its msg_type is the inner type).
RECORD_HEADER: Final = 256
INNER_CONTENT_TYPE: Final = 257

# Markers tlstiming adds to a handshake's events in the content type's place
# (negative: never a content type).
ENTER: Final = -1  # a do_handshake() call starts
EXIT: Final = -2  # it returns
SNI_START: Final = -3  # the server's sni_callback starts
SNI_END: Final = -4  # it returns
VERIFY_START: Final = -5  # a verifier starts; the event's data is its name, UTF-8
VERIFY_END: Final = -6  # it returns
CHAIN_START: Final = -7  # OpenSSL starts building and verifying the peer's chain (native)
CHAIN_END: Final = -8  # it is done; data: ok, error, depth, chain length (int32 LE), message

FATAL: Final = 2  # the alert level that ends a connection (1 is a warning)
CLOSE_NOTIFY: Final = 0  # the alert description of a clean close
TLS1_2: Final = 0x0303
TLS1_3: Final = 0x0304

HELLO_RETRY_RANDOM: Final = bytes.fromhex(
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
)
"""ServerHello.random of a HelloRetryRequest: SHA-256 of ``b"HelloRetryRequest"``."""

# -- names --------------------------------------------------------------------

CONTENT_TYPES: Final[Mapping[int, str]] = {
    CHANGE_CIPHER_SPEC: "change_cipher_spec",
    ALERT: "alert",
    HANDSHAKE: "handshake",
    APPLICATION_DATA: "application_data",
    HEARTBEAT: "heartbeat",
}
HANDSHAKE_TYPES: Final[Mapping[int, str]] = {int(t): t.name.lower() for t in HandshakeType}

ALERT_DESCRIPTIONS: Final[Mapping[int, str]] = {
    CLOSE_NOTIFY: "close_notify",
    10: "unexpected_message",
    20: "bad_record_mac",
    21: "decryption_failed",
    22: "record_overflow",
    30: "decompression_failure",
    40: "handshake_failure",
    41: "no_certificate",
    42: "bad_certificate",
    43: "unsupported_certificate",
    44: "certificate_revoked",
    45: "certificate_expired",
    46: "certificate_unknown",
    47: "illegal_parameter",
    48: "unknown_ca",
    49: "access_denied",
    50: "decode_error",
    51: "decrypt_error",
    52: "too_many_cids_requested",
    60: "export_restriction",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    86: "inappropriate_fallback",
    90: "user_canceled",
    100: "no_renegotiation",
    109: "missing_extension",
    110: "unsupported_extension",
    111: "certificate_unobtainable",
    112: "unrecognized_name",
    113: "bad_certificate_status_response",
    114: "bad_certificate_hash_value",
    115: "unknown_psk_identity",
    116: "certificate_required",
    120: "no_application_protocol",
    121: "ech_required",
}

_ALERT_LEVELS: Final[Mapping[int, str]] = {1: "warning", FATAL: "fatal"}

NAMED_GROUPS: Final[Mapping[int, str]] = {
    19: "secp192r1",
    21: "secp224r1",
    22: "secp256k1",
    23: "secp256r1",
    24: "secp384r1",
    25: "secp521r1",
    26: "brainpoolP256r1",
    27: "brainpoolP384r1",
    28: "brainpoolP512r1",
    29: "x25519",
    30: "x448",
    31: "brainpoolP256r1tls13",
    32: "brainpoolP384r1tls13",
    33: "brainpoolP512r1tls13",
    0x0100: "ffdhe2048",
    0x0101: "ffdhe3072",
    0x0102: "ffdhe4096",
    0x0103: "ffdhe6144",
    0x0104: "ffdhe8192",
    0x0200: "MLKEM512",
    0x0201: "MLKEM768",
    0x0202: "MLKEM1024",
    0x11EB: "SecP256r1MLKEM768",
    0x11EC: "X25519MLKEM768",
    0x11ED: "SecP384r1MLKEM1024",
    0x6399: "X25519Kyber768Draft00",
    0x639A: "SecP256r1Kyber768Draft00",
}

CIPHER_SUITES: Final[Mapping[int, str]] = {
    0x1301: "TLS_AES_128_GCM_SHA256",
    0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
    0x1304: "TLS_AES_128_CCM_SHA256",
    0x1305: "TLS_AES_128_CCM_8_SHA256",
    0xC02B: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    0xC02C: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    0xC02F: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    0xC030: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    0xCCA8: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCA9: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCAA: "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0x009E: "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
    0x009F: "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
    0x009C: "TLS_RSA_WITH_AES_128_GCM_SHA256",
    0x009D: "TLS_RSA_WITH_AES_256_GCM_SHA384",
    0xC023: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    0xC024: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
    0xC027: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    0xC028: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    0xC009: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    0xC00A: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    0xC013: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    0xC014: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    0x0067: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
    0x006B: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
    0x0033: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
    0x0039: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
    0x003C: "TLS_RSA_WITH_AES_128_CBC_SHA256",
    0x003D: "TLS_RSA_WITH_AES_256_CBC_SHA256",
    0x002F: "TLS_RSA_WITH_AES_128_CBC_SHA",
    0x0035: "TLS_RSA_WITH_AES_256_CBC_SHA",
    0x000A: "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    0x00FF: "TLS_EMPTY_RENEGOTIATION_INFO_SCSV",
    0x5600: "TLS_FALLBACK_SCSV",
}

VERSIONS: Final[Mapping[int, str]] = {
    TLS1_3: "1.3",
    TLS1_2: "1.2",
    0x0302: "1.1",
    0x0301: "1.0",
    0x0300: "SSL 3.0",
}

SIGNATURE_SCHEMES: Final[Mapping[int, str]] = {
    0x0201: "rsa_pkcs1_sha1",
    0x0203: "ecdsa_sha1",
    0x0401: "rsa_pkcs1_sha256",
    0x0501: "rsa_pkcs1_sha384",
    0x0601: "rsa_pkcs1_sha512",
    0x0403: "ecdsa_secp256r1_sha256",
    0x0503: "ecdsa_secp384r1_sha384",
    0x0603: "ecdsa_secp521r1_sha512",
    0x0804: "rsa_pss_rsae_sha256",
    0x0805: "rsa_pss_rsae_sha384",
    0x0806: "rsa_pss_rsae_sha512",
    0x0807: "ed25519",
    0x0808: "ed448",
    0x0809: "rsa_pss_pss_sha256",
    0x080A: "rsa_pss_pss_sha384",
    0x080B: "rsa_pss_pss_sha512",
    0x081A: "ecdsa_brainpoolP256r1tls13_sha256",
    0x081B: "ecdsa_brainpoolP384r1tls13_sha384",
    0x081C: "ecdsa_brainpoolP512r1tls13_sha512",
    0x0904: "mldsa44",
    0x0905: "mldsa65",
    0x0906: "mldsa87",
}

EXTENSIONS: Final[Mapping[int, str]] = {
    0: "server_name",
    1: "max_fragment_length",
    5: "status_request",
    10: "supported_groups",
    11: "ec_point_formats",
    13: "signature_algorithms",
    16: "application_layer_protocol_negotiation",
    17: "status_request_v2",
    18: "signed_certificate_timestamp",
    21: "padding",
    22: "encrypt_then_mac",
    23: "extended_master_secret",
    27: "compress_certificate",
    28: "record_size_limit",
    35: "session_ticket",
    41: "pre_shared_key",
    42: "early_data",
    43: "supported_versions",
    44: "cookie",
    45: "psk_key_exchange_modes",
    47: "certificate_authorities",
    48: "oid_filters",
    49: "post_handshake_auth",
    50: "signature_algorithms_cert",
    51: "key_share",
    57: "quic_transport_parameters",
    0xFE0D: "encrypted_client_hello",
    0xFF01: "renegotiation_info",
}


def is_grease(value: int) -> bool:
    """Tell whether a 16-bit value is a GREASE value (RFC 8701), e.g. 0x0A0A.

    Args:
        value: a cipher suite, group, version, extension or scheme code point.

    Returns:
        True for the sixteen values 0x0A0A, 0x1A1A, ..., 0xFAFA.
    """
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF


def _lookup(table: Mapping[int, str], value: int, width: int) -> str:
    name = table.get(value)
    if name is not None:
        return name
    if width == 4 and is_grease(value):
        return f"grease(0x{value:04X})"
    return f"unknown(0x{value:0{width}X})"


def handshake_type_name(n: int) -> str:
    """Name a handshake message type, e.g. ``1 -> "client_hello"``."""
    return _lookup(HANDSHAKE_TYPES, n, 2)


def alert_name(n: int) -> str:
    """Name an alert description, e.g. ``48 -> "unknown_ca"``."""
    return _lookup(ALERT_DESCRIPTIONS, n, 2)


def alert_level_name(n: int) -> str:
    """Name an alert level: ``1 -> "warning"``, ``2 -> "fatal"``."""
    return _lookup(_ALERT_LEVELS, n, 2)


def group_name(n: int) -> str:
    """Name a named group, e.g. ``0x001D -> "x25519"``."""
    return _lookup(NAMED_GROUPS, n, 4)


def cipher_name(n: int) -> str:
    """Name a cipher suite by its IANA name; unknown suites become ``"0x%04X"``."""
    name = CIPHER_SUITES.get(n)
    if name is not None:
        return name
    return f"grease(0x{n:04X})" if is_grease(n) else f"0x{n:04X}"


def version_name(n: int) -> str:
    """Name a protocol version: ``0x0304 -> "1.3"``, ``0x0300 -> "SSL 3.0"``."""
    return _lookup(VERSIONS, n, 4)


def signature_scheme_name(n: int) -> str:
    """Name a signature scheme, e.g. ``0x0804 -> "rsa_pss_rsae_sha256"``."""
    return _lookup(SIGNATURE_SCHEMES, n, 4)


def extension_name(n: int) -> str:
    """Name an extension type, e.g. ``43 -> "supported_versions"``."""
    return _lookup(EXTENSIONS, n, 4)
