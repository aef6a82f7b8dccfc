"""The sync half of the paired client code, generated from ``_async/`` by scripts/unasync.py."""
