"""Approval, rollback and alias history on top of MLflow aliases: `champion` moves only through here,
and every move is a record in the model's chain (governance/chain.py) and a tag in MLflow."""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from typing import Any

from govtrain.core.config import Config
from govtrain.governance import chain, signing
from govtrain.governance.evidence import blocks
from govtrain.governance.ledger import verify
from govtrain.registry.identity import Identity, whoami
from govtrain.registry.model_card import description, with_approvals
from govtrain.registry.models import (
    CHAMPION,
    ModelRef,
    RegistryError,
    append_anchored,
    client_for,
    current_alias,
    fetch_bundle,
    fetch_model_into,
    incomplete,
    resolve,
)


class Refused(RuntimeError):
    """A promotion or rollback the rules do not allow (exit 1, not a usage error)."""


@dataclass
class AliasMove:
    model: str
    alias: str
    from_version: str | None
    to_version: str
    record: dict


def check_version(config: Config, client: Any, version: Any) -> dict:
    """The version's verified ledger; refuses if it does not verify or did not pass every gate."""
    if unfinished := incomplete(version):
        raise Refused(unfinished)
    bundle = fetch_bundle(client, version)
    try:
        fetch_model_into(version, bundle)  # the files a server would load, against the ledger's digests
        result = verify(bundle, trusted_keys=signing.trusted_keys(config.governance.public_keys))
        if not result.ok:
            raise Refused(f"{version.name}/{version.version}: its ledger does not verify: {result.problem}")
        ledger = json.loads((bundle / "ledger.json").read_bytes())
    finally:
        shutil.rmtree(bundle.parent, ignore_errors=True)
    if ledger["root"] != version.tags.get("govtrain.ledger_root"):
        raise Refused(f"{version.name}/{version.version}: the registry's ledger root tag does not match its bundle")
    failed = [c["id"] for r in ledger["records"] for c in r.get("checks", []) if blocks(c)]
    if ledger["outcome"] != "registered" or failed:
        raise Refused(f"{version.name}/{version.version}: failed gate {failed[0] if failed else ledger['outcome']}")
    return ledger


def _move(config: Config, client: Any, model: str, step: str, target: Any, previous: Any, who: Identity,
          reason: str, ledger: dict) -> AliasMove:
    approver = who.name
    from_version = previous.version if previous else None
    previous_root = previous.tags.get("govtrain.ledger_root") if previous else None
    client.set_registered_model_alias(model, CHAMPION, target.version)
    try:
        record = append_anchored(config, model, step, version=str(target.version), model_root=ledger["root"],
                                 details={"alias": CHAMPION, "from_version": from_version,
                                          "to_version": target.version, "approver": approver, "reason": reason,
                                          "previous_root": previous_root, "approver_identity": who.record()})
    except Exception:
        # No alias move without its record: put the alias back.
        if previous:
            client.set_registered_model_alias(model, CHAMPION, previous.version)
        else:
            client.delete_registered_model_alias(model, CHAMPION)
        raise
    refresh_card(config, client, model, target)
    if previous:
        refresh_card(config, client, model, previous)
    summary = f"{step}: {from_version or '-'} -> {target.version} by {approver} at {record['finished']}: {reason}"
    client.set_registered_model_tag(model, f"govtrain.alias_history.{record['seq']:06d}", summary[:4900])
    client.set_model_version_tag(model, target.version, f"govtrain.{step}d_by", approver)
    client.set_model_version_tag(model, target.version, f"govtrain.{step}_reason", reason[:4900])
    return AliasMove(model, CHAMPION, from_version, str(target.version), record)


def refresh_card(config: Config, client: Any, model: str, version: Any) -> None:
    """Rewrite the card's approval history from the chain (the card is the version's description)."""
    records = chain.read_chain(config.chain_dir, model)
    root = version.tags.get("govtrain.ledger_root")
    approvals = [r for r in chain.alias_history(records, CHAMPION) if r["model_root"] == root
                 or r["details"].get("previous_root") == root]
    card = client.get_model_version(model, version.version).description or ""
    client.update_model_version(model, version.version, description=description(with_approvals(card, approvals)))


def _current(client: Any, model: str) -> Any:
    try:
        return resolve(client, ModelRef(model, alias=CHAMPION))
    except RegistryError:
        return None


def approver_identity(config: Config, claimed: str | None) -> Identity:
    """Who approves: the authenticated MLflow user when the server vouches for one (a different --approver is
    refused: the approver is whoever logs in), else the claimed name or the OS user, marked not authenticated."""
    who = whoami(config.tracking_uri)
    if who.authenticated:
        if claimed and not who.same_person(claimed):
            raise Refused(f"--approver {claimed!r} is not the authenticated MLflow user {who.name!r}: the approver "
                          f"is whoever logs in")
        return who
    return Identity(claimed or who.name, False, who.by)


def check_duties(config: Config, model: str, version: str, ledger: dict, approver: Identity) -> None:
    """Separation of duties: the approver is not who registered the version (case-normalised)."""
    if not config.governance.separation_of_duties:
        return
    register = next(r for r in ledger["records"] if r["step"] == "register")
    registrar = register["details"].get("registered_by", {}).get("user") or register["actor"]
    if approver.same_person(registrar):
        raise Refused(f"{model}/{version}: approver {approver.name!r} registered it (as {registrar!r}; separation "
                      f"of duties, governance.separation_of_duties)")


def promote(config: Config, model: str, version: str, approver: str | None, reason: str) -> AliasMove:
    client = client_for(config.tracking_uri)
    who = approver_identity(config, approver)
    target = resolve(client, ModelRef(model, version=str(version)))
    ledger = check_version(config, client, target)
    check_duties(config, model, str(version), ledger, who)
    previous = _current(client, model)
    if previous and previous.version == target.version:
        raise Refused(f"{model}/{version} is already the champion")
    return _move(config, client, model, "promote", target, previous, who, reason, ledger)


def champion_stack(records: list[dict]) -> list[str]:
    """Champion versions still standing: a promotion pushes, a rollback pops."""
    stack: list[str] = []
    for record in chain.alias_history(records, CHAMPION):
        if record["step"] == "promote":
            stack.append(record["details"]["to_version"])
        elif stack:
            stack.pop()
    return stack


def rollback(config: Config, model: str, approver: str | None, reason: str) -> AliasMove:
    client = client_for(config.tracking_uri)
    who = approver_identity(config, approver)
    records = chain.read_chain(config.chain_dir, model)
    check = chain.verify_chain(config.chain_dir, model, signing.trusted_keys(config.governance.public_keys))
    if not check.ok:
        raise Refused(f"{model}: its chain does not verify: {check.problem}")
    stack = champion_stack(records)
    if len(stack) < 2:
        raise Refused(f"{model}: no previous champion to return to")
    previous = _current(client, model)
    target = resolve(client, ModelRef(model, version=stack[-2]))
    ledger = check_version(config, client, target)
    check_duties(config, model, str(target.version), ledger, who)
    return _move(config, client, model, "rollback", target, previous, who, reason, ledger)


def alias_check(config: Config, model: str) -> str | None:
    """A champion alias moved outside govtrain, said in one line (None when registry and chain agree)."""
    current = current_alias(client_for(config.tracking_uri), model, CHAMPION)
    return chain.alias_discrepancy(chain.read_chain(config.chain_dir, model), CHAMPION, model,
                                   str(current.version) if current is not None else None)


def history(config: Config, model: str) -> list[dict]:
    """Which version was champion when: one row per alias change, oldest first."""
    rows = []
    for record in chain.alias_history(chain.read_chain(config.chain_dir, model), CHAMPION):
        d = record["details"]
        rows.append({"seq": record["seq"], "at": record["finished"], "action": record["step"],
                     "from": d["from_version"], "to": d["to_version"], "approver": d["approver"],
                     "reason": d["reason"], "hash": record["hash"]})
    return rows
