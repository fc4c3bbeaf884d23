"""The key log as the attack: trusted.pub and signing.key replaced and everything re-signed (before: verified
locally), a key trusting itself in, an entry forged into the log, a key used outside its window; and the
rotation an operator does (trust the new key, switch, retire the old one)."""
import json
import os
import re

import pytest

from govtrain.governance import chain, keylog, keys, signing
from govtrain.governance.keylog import KeyLogError
from govtrain.governance.ledger import verify
from tests.test_cli import govtrain
from tests.test_signing import forge, home, sealed  # noqa: F401 - home is a fixture


def test_the_first_key_is_entry_one_and_verify_names_the_entry(home, tmp_path):  # noqa: F811
    bundle = sealed(tmp_path)
    public = signing.public_key_of((home / "keys" / "signing.key").read_text())
    [entry] = keylog.entries()
    assert (entry["step"], entry["details"]["public_key"], entry["signature"]["public_key"]) == ("trust", public,
                                                                                                 public)
    result = verify(bundle)
    assert result.ok and result.signed_by == public and result.trusted_by == "key log entry 1"
    out = govtrain("audit", "verify", bundle, "--config", tmp_path / "none.yaml")
    assert out.returncode == 0 and f"signed by ed25519:{public[:16]}… (trusted by key log entry 1)" in out.stdout


def test_replacing_trusted_pub_and_the_key_and_resigning_everything_no_longer_verifies(home, tmp_path):  # noqa: F811
    bundle = sealed(tmp_path)
    attacker_seed, attacker = signing.new_key()
    (home / "keys" / "signing.key").write_text(attacker_seed + "\n")
    (home / "keys" / "trusted.pub").write_text(attacker + "\n")  # before: this was what verify trusted
    forge(bundle, resign_with=attacker_seed)
    assert verify(bundle).problem == f"ledger root is signed by ed25519:{attacker[:16]}…, which is not a trusted key"
    # Trusting itself in through govtrain is refused: the log takes entries signed by a key it trusts.
    with pytest.raises(KeyLogError, match="is not trusted by the key log: a key is trusted only by an entry a "
                                          "trusted key signs"):
        keylog.change("trust", attacker, "let me in", keys.signing_key())


def test_an_entry_forged_into_the_log_with_the_attackers_key_breaks_the_log_loudly(home, tmp_path):  # noqa: F811
    sealed(tmp_path)
    attacker_seed, attacker = signing.new_key()
    with chain.opened(home / "keys", "log") as log:  # the chain code itself, as a plain-file writer could
        log.append("trust", version=None, model_root=None, seed=attacker_seed,
                   details={"public_key": attacker, "by": "mallory", "reason": "let me in"})
    short = re.escape(attacker[:16])  # base64 may hold "+" and "/"
    with pytest.raises(KeyLogError, match=rf"key log entry 2 \(trust ed25519:{short}…\) is signed by "
                                          rf"ed25519:{short}…, which the log did not trust then"):
        keys.trusted_keys()
    out = govtrain("audit", "verify", tmp_path / "bundle", "--config", tmp_path / "none.yaml")
    assert out.returncode == 2 and "which the log did not trust then" in out.stderr


def test_rotation_trusts_the_new_key_and_retires_the_old_one_from_its_entry_on(home, tmp_path, monkeypatch):  # noqa: F811
    old_bundle = sealed(tmp_path, "old")
    old_seed = (home / "keys" / "signing.key").read_text().strip()
    new_seed, new_public = signing.new_key()
    out = govtrain("audit", "trust-key", "--public-key", new_public, "--reason", "yearly rotation")
    assert out.returncode == 0 and out.stdout.startswith("key log entry 2: trust")
    monkeypatch.setenv(signing.KEY_ENV, new_seed)
    new_bundle = sealed(tmp_path, "new")
    assert verify(new_bundle).trusted_by == "key log entry 2"
    retire = govtrain("audit", "retire-key", "--public-key", signing.public_key_of(old_seed), "--reason", "rotated",
                      )
    assert retire.returncode == 0, retire.stderr
    env = {k: v for k, v in os.environ.items()}
    assert env[signing.KEY_ENV] == new_seed
    assert verify(old_bundle).ok  # sealed while the old key was trusted: still verifies
    monkeypatch.setenv(signing.KEY_ENV, old_seed)  # the retired key, used again (a copy someone kept)
    late = sealed(tmp_path, "late")
    problem = verify(late).problem
    assert problem.startswith(f"ledger root is signed by ed25519:{signing.public_key_of(old_seed)[:16]}… at ")
    assert "when the key log did not trust it (trusted from None (key log entry 1) to " in problem
    assert problem.endswith("(key log entry 3))")
    with pytest.raises(KeyLogError, match="is not trusted by the key log"):  # nor may it sign entries now
        keylog.change("trust", signing.new_key()[1], "sneaking back", keys.signing_key())


def test_a_key_trusted_later_does_not_verify_what_it_signed_before(home, tmp_path, monkeypatch):  # noqa: F811
    sealed(tmp_path, "first")  # makes this machine's key and the log
    early_seed, early_public = signing.new_key()
    monkeypatch.setenv(signing.KEY_ENV, early_seed)
    early = sealed(tmp_path, "early")  # signed before anyone trusted the key
    monkeypatch.delenv(signing.KEY_ENV)
    keylog.change("trust", early_public, "the cluster's key", keys.signing_key())
    ledger = json.loads((early / "ledger.json").read_bytes())
    assert "when the key log did not trust it" in verify(early).problem and ledger["sealed"]
    assert verify(early, trusted_keys=[early_public]).ok  # a key the auditor names is trusted for all time
