"""The canonical form of a results.json document, and its SHA-256.

The report prints this hash, `harness sign` signs it and `harness verify` recomputes it, so it
must not depend on how the file happens to be indented: the canonical form is the JSON text with
keys sorted, no insignificant whitespace, non-ASCII characters as themselves and UTF-8 encoded
(the shape of RFC 8785's JSON Canonicalization Scheme; numbers keep Python's shortest
round-trip repr, which is what the harness writes in the first place).

Standard library only: the report layer and the signing code both import it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(document: Any) -> bytes:
    """`document` as canonical UTF-8 JSON bytes."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def canonical_sha256(document: Any) -> str:
    """Hex SHA-256 of `document`'s canonical form."""
    return hashlib.sha256(canonical_json(document)).hexdigest()
