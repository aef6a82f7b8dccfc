"""The async half of the paired client code: the source of ``_sync/`` (see scripts/unasync.py)."""
