"""The digest of a key: what every stored result is checked against before it is reused.

A key is a JSON-able value (the configuration sections, code versions, input digests that
determine a result); its digest is the SHA-256 of its canonical JSON (keys sorted), cut to
`length` hex digits. Every stage names its stored results by this one function, so two keys
that are equal give the same digest everywhere. Imports nothing of the project.
"""

from __future__ import annotations

import hashlib
import json


def key_digest(key, length: int | None = 16) -> str:
    """SHA-256 of `key`'s canonical JSON, as hex (`length` digits; None: all 64)."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:length]
