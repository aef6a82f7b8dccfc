"""Text a peer wrote, made safe to show to a person (pure).

A span carries strings that come off the wire or from the peer's
certificate: the SNI name, the ALPN protocols offered and selected,
certificate names, and error messages and verifier reasons that quote them.
Rendered as they are, a control character forges a log line (``\\n``),
rewrites a terminal (``ESC[2J``) or reorders what is read (a bidi
override). Every rendering for people (log messages, the CLI, the pytest
report and budget failures, ``repr()``) passes them through :func:`escape`;
structured output (``to_dict()``, flat log fields, JSON, OpenTelemetry
attributes) keeps the raw value, which its serializer escapes.
"""

from __future__ import annotations

__all__ = ["escape"]


def _one(char: str) -> str:
    if char == "\\":
        return "\\\\"
    if char.isprintable():
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape(text: str) -> str:
    """Return ``text`` with nothing a terminal or log reader would act on.

    Every character that is not printable (``str.isprintable``: C0 and C1
    controls, DEL, format characters such as bidi overrides and zero-width
    spaces, separators other than the ASCII space, surrogates, unassigned
    code points) becomes ``\\xNN``, ``\\uNNNN`` or ``\\UNNNNNNNN``, and a
    backslash becomes ``\\\\``, so the escaped text reads back unambiguously.
    Printable text, non-ASCII letters included, is returned unchanged.

    Args:
        text: a string that may hold peer-controlled characters.

    Returns:
        One printable line.
    """
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(map(_one, text))
