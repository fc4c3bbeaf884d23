"""Ed25519 signatures of ledger roots and chain records (the cryptography package); which key signs and
which keys are trusted is governance/keys.py, on top of this and the key log.

Everything is signed; which key signs, in order: GOVTRAIN_SIGNING_KEY (base64 of the 32-byte seed), the file
GOVTRAIN_SIGNING_KEY_FILE names (on a cluster, a Secret mounted only into the steps that seal or append), else
this machine's own key, made on first use as <state>/keys/signing.key (mode 0600) and trusted from then on
by entry 1 of the key log (governance/keylog.py). Verification trusts the keys of the key log, each in its
window, plus those configured (governance.public_keys, policy.yaml), or exactly the keys an auditor names.
Public keys are base64 of the 32 raw bytes. The private key never sits in a file of the repository.
"""
from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from govtrain.core.state import state_dir

ALGORITHM = "ed25519"
KEY_ENV, KEY_FILE_ENV = "GOVTRAIN_SIGNING_KEY", "GOVTRAIN_SIGNING_KEY_FILE"
LOCAL_KEY, TRUSTED = "signing.key", "trusted.pub"


class SigningError(ValueError):
    pass


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def new_key() -> tuple[str, str]:
    """(private seed, public key), both base64."""
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return _b64(seed), public_key_of(_b64(seed))


def _private(seed_b64: str) -> Ed25519PrivateKey:
    try:
        return Ed25519PrivateKey.from_private_bytes(base64.b64decode(seed_b64.strip(), validate=True))
    except ValueError as exc:
        raise SigningError(f"signing key is not base64 of a 32-byte Ed25519 seed ({exc})") from exc


def public_key_of(seed_b64: str) -> str:
    public = _private(seed_b64).public_key()
    return _b64(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def key_from_environment() -> str | None:
    if os.environ.get(KEY_ENV):
        return os.environ[KEY_ENV]
    path = os.environ.get(KEY_FILE_ENV)
    if path:
        if not Path(path).is_file():
            raise SigningError(f"{KEY_FILE_ENV}={path}: no such file")
        return Path(path).read_text()
    return None


def key_dir() -> Path:
    return state_dir() / "keys"


def public_key_bytes(public_key: str) -> bytes:
    try:
        raw = base64.b64decode(public_key, validate=True)
    except ValueError as exc:
        raise SigningError(f"{public_key!r} is not base64") from exc
    if len(raw) != 32:
        raise SigningError(f"{public_key!r} is not an Ed25519 public key (32 bytes, base64)")
    return raw


def short(public_key: str) -> str:
    return f"ed25519:{public_key[:16]}…"


def sign(root: str, seed_b64: str) -> dict[str, str]:
    signature = _private(seed_b64).sign(root.encode())
    return {"algorithm": ALGORITHM, "public_key": public_key_of(seed_b64), "value": _b64(signature)}


def check(root: str, signature: dict) -> bool:
    if signature.get("algorithm") != ALGORITHM:
        return False
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(signature["public_key"], validate=True))
        public.verify(base64.b64decode(signature["value"], validate=True), root.encode())
        return True
    except (InvalidSignature, ValueError, KeyError, TypeError):
        return False
