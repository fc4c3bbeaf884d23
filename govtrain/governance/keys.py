"""Which key signs and which keys are trusted: this machine's key made on first use (and entered in the key
log), a team key from the environment, and the trusted set the key log and the operator's configuration
give, each key for its window of trust."""
from __future__ import annotations

import os
import tempfile

from govtrain.governance import keylog
from govtrain.governance.keylog import KeyTrust
from govtrain.governance.signing import (
    LOCAL_KEY,
    TRUSTED,
    check,
    key_dir,
    key_from_environment,
    new_key,
    short,
)


def signing_key() -> str:
    """The seed that signs: from the environment when set, else this machine's key (made on first use)."""
    return key_from_environment() or local_key()


def local_key() -> str:
    """<state>/keys/signing.key, created 0600 the first time and trusted by the key log's first entry
    (governance/keylog.py; trusted.pub keeps a copy for people); two processes racing to create it end up
    with one key (the file appears by link(2), which refuses to replace one already there)."""
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
            keylog.start(seed)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            os.unlink(tmp)
    return path.read_text().strip()


def trusted_keys(configured: list[str] | tuple[str, ...] = ()) -> KeyTrust:
    """The configured keys (trusted for all time: the operator's word) and those the key log trusts, each
    for its window (governance/keylog.py). Before the key log existed: <state>/keys/trusted.pub."""
    logged = keylog.trusted_by_log()
    if not logged:
        trust = key_dir() / TRUSTED
        legacy = trust.read_text().split() if trust.is_file() else []
        return KeyTrust(list(dict.fromkeys([*configured, *legacy])))
    return logged.with_configured(configured)


def signature_problem(signed: str, signature: object, trusted: list[str] | None, allow_unsigned: bool,
                      what: str, at: str | None = None) -> tuple[str | None, str | None]:
    """(what is wrong in one line or None, the public key that signed or None), for a ledger root or a chain
    record's hash made at time `at` (a key the key log trusted only at other times does not verify it)."""
    if signature is None:
        return (None if allow_unsigned else f"{what} is not signed (--allow-unsigned checks hashes only)"), None
    if not isinstance(signature, dict) or not check(signed, signature):
        return f"{what} signature does not verify", None
    key = signature["public_key"]
    trusted = trusted_keys() if trusted is None else trusted
    if key not in trusted:
        return f"{what} is signed by {short(key)}, which is not a trusted key", key
    if isinstance(trusted, KeyTrust) and (problem := trusted.problem(key, at, what)):
        return problem, key
    return None, key
