"""Ed25519 signatures of ledger roots and chain records (the cryptography package).

Everything is signed; which key signs, in order: GOVTRAIN_SIGNING_KEY (base64 of the 32-byte seed), the file
GOVTRAIN_SIGNING_KEY_FILE names (on a cluster, a Secret mounted only into the steps that seal or append), else
this machine's own key, made on first use as <state>/keys/signing.key (mode 0600) and trusted from then on
by listing its public key in <state>/keys/trusted.pub. Verification trusts the keys of trusted.pub plus those
configured (governance.public_keys), or exactly the keys an auditor names. Public keys are base64 of the 32
raw bytes. The private key never sits in a file of the repository.
"""
from __future__ import annotations

import base64
import os
import tempfile
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


def signing_key() -> str:
    """The seed that signs: from the environment when set, else this machine's key (made on first use)."""
    return key_from_environment() or local_key()


def local_key() -> str:
    """<state>/keys/signing.key, created 0600 and trusted the first time; two processes racing to create it
    end up with one key (the file appears by link(2), which refuses to replace one already there)."""
    folder = key_dir()
    path = folder / LOCAL_KEY
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        seed, public = new_key()
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".key-")  # mkstemp makes it 0600
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(seed + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.link(tmp, path)
            with open(folder / TRUSTED, "a") as trusted:
                trusted.write(public + "\n")
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            os.unlink(tmp)
    return path.read_text().strip()


def trusted_keys(configured: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The configured keys and those of <state>/keys/trusted.pub (this machine's key once it exists)."""
    trust = key_dir() / TRUSTED
    local = trust.read_text().split() if trust.is_file() else []
    return list(dict.fromkeys([*configured, *local]))


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


def signature_problem(signed: str, signature: object, trusted: list[str] | None, allow_unsigned: bool,
                      what: str) -> tuple[str | None, str | None]:
    """(what is wrong in one line or None, the public key that signed or None), for a ledger root or a chain
    record's hash."""
    if signature is None:
        return (None if allow_unsigned else f"{what} is not signed (--allow-unsigned checks hashes only)"), None
    if not isinstance(signature, dict) or not check(signed, signature):
        return f"{what} signature does not verify", None
    key = signature["public_key"]
    trusted = trusted_keys() if trusted is None else trusted
    if key not in trusted:
        return f"{what} is signed by {short(key)}, which is not a trusted key", key
    return None, key
