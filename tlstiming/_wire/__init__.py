"""Bytes to TLS messages, and the names of wire numbers. Pure: no I/O, no clock, no ssl objects."""
