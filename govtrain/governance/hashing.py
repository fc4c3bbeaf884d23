"""Canonical JSON and sha256: the two primitives every record and verification rests on."""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, UTF-8, no insignificant whitespace: one byte string per value."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def jsonable(obj: Any) -> Any:
    """Plain JSON values: NaN and infinities become null, unknown types their str()."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    if hasattr(obj, "item"):  # numpy scalars
        return jsonable(obj.item())
    return str(obj)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def record_hash(record: dict) -> str:
    """sha256 of the canonical record without its own "hash" and "signature" fields (the signature is of
    the hash)."""
    return sha256_bytes(canonical_json({k: v for k, v in record.items() if k not in ("hash", "signature")}))
