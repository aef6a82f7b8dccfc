"""Just enough HTTP/2 for a probe: one GET, and the response's ``:status``.

RFC 9113 frames and RFC 7541 header blocks, written and read by hand: the
request's headers as literals (no Huffman, no dynamic table), the response's
``:status`` read from the first header field, which servers send as an
indexed static-table entry or a literal with the ``:status`` name (its value
plain or Huffman-coded digits). Anything else leaves the status unknown; the
time of the first byte is what the probe needs.
"""

from __future__ import annotations

import ssl
import struct
from collections.abc import Callable
from typing import Final

__all__ = ["get"]

PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_DATA, _HEADERS, _RST_STREAM, _SETTINGS, _GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x7
_END_STREAM, _END_HEADERS, _ACK = 0x1, 0x4, 0x1
_STATIC_STATUS: Final = {8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500}
# RFC 7541 Appendix B: the Huffman codes of the ten digits, as (code, bit length).
_DIGITS: Final = {
    (0b00000, 5): "0", (0b00001, 5): "1", (0b00010, 5): "2", (0b011001, 6): "3",
    (0b011010, 6): "4", (0b011011, 6): "5", (0b011100, 6): "6", (0b011101, 6): "7",
    (0b011110, 6): "8", (0b011111, 6): "9",
}  # fmt: skip
_MAX_FRAMES: Final = 64
_MAX_FRAME: Final = 16_384  # SETTINGS_MAX_FRAME_SIZE's initial value: we never raise it


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes([kind, flags])
        + struct.pack(">I", stream)
        + payload
    )


def _string(text: str) -> bytes:
    data = text.encode("ascii", "replace")
    if len(data) < 127:
        return bytes([len(data)]) + data
    n, out = len(data) - 127, bytearray([127])
    while n >= 128:
        out.append((n % 128) | 128)
        n //= 128
    return bytes([*out, n]) + data


def _headers(authority: str, path: str) -> bytes:
    fields = (
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", authority),
        (":path", path),
        ("user-agent", "tlstiming-probe"),
        ("accept", "*/*"),
    )
    return b"".join(b"\x00" + _string(name) + _string(value) for name, value in fields)


def get(
    tls: ssl.SSLSocket, authority: str, path: str, on_first_byte: Callable[[], None]
) -> int | None:
    """Send one GET on stream 1; return the response's status when its headers arrive.

    ``on_first_byte`` is called when the response's HEADERS frame starts to
    arrive. The socket's timeout bounds every read.

    Raises:
        ConnectionError: the server closed, reset the stream or went away first.
    """
    tls.sendall(
        PREFACE
        + _frame(_SETTINGS, 0, 0)
        + _frame(_HEADERS, _END_STREAM | _END_HEADERS, 1, _headers(authority, path))
    )
    for n in range(_MAX_FRAMES):
        header = _read(tls, 9)
        length = int.from_bytes(header[:3], "big")
        kind, flags, stream = header[3], header[4], int.from_bytes(header[5:9], "big") & 0x7FFFFFFF
        if length > _MAX_FRAME or (n == 0 and (kind, stream) != (_SETTINGS, 0)):
            on_first_byte()  # a server that selected h2 but does not speak it
            return None
        if kind == _HEADERS and stream == 1:
            on_first_byte()
            return _status(_read(tls, length), flags)
        payload = _read(tls, length)
        if kind == _SETTINGS and not flags & _ACK:
            tls.sendall(_frame(_SETTINGS, _ACK, 0))
        elif kind == _GOAWAY or (kind == _RST_STREAM and stream == 1):
            code = int.from_bytes(payload[-4:], "big") if len(payload) >= 4 else -1
            raise ConnectionError(f"the server ended the HTTP/2 stream (error code {code})")
    return None


def _read(tls: ssl.SSLSocket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = tls.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the server closed the connection without answering the request")
        data += chunk
    return bytes(data)


def _status(block: bytes, flags: int) -> int | None:
    """``:status`` from the first field of a header block (padding and priority skipped)."""
    if flags & 0x8 and block:  # PADDED
        block = block[1 : len(block) - block[0]]
    if flags & 0x20:  # PRIORITY
        block = block[5:]
    if not block:
        return None
    first = block[0]
    if first & 0x80:
        return _STATIC_STATUS.get(first & 0x7F)
    name_index = first & (0x3F if first & 0x40 else 0x0F)
    if name_index not in _STATIC_STATUS or len(block) < 2:
        return None
    huffman, length = block[1] & 0x80, block[1] & 0x7F
    raw = block[2 : 2 + length]
    text = _huffman_digits(raw) if huffman else raw.decode("ascii", "replace")
    return int(text) if text is not None and text.isdigit() and len(text) == 3 else None


def _huffman_digits(data: bytes) -> str | None:
    bits = "".join(f"{byte:08b}" for byte in data)
    out, i = [], 0
    while i < len(bits):
        for size in (5, 6):
            code = bits[i : i + size]
            digit = _DIGITS.get((int(code, 2), size)) if len(code) == size else None
            if digit is not None:
                out.append(digit)
                i += size
                break
        else:
            rest = bits[i:]
            return "".join(out) if len(rest) < 8 and set(rest) <= {"1"} else None  # EOS padding
    return "".join(out)
