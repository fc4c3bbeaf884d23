"""Approval, rollback and alias history on top of MLflow aliases: `champion` moves only through here,
and every move is a record in the model's chain (governance/chain.py) and a tag in MLflow."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from govtrain.core.config import Config
from govtrain.governance import chain, keys
from govtrain.governance.evidence import blocks
from govtrain.registry.bound import (
    LIFECYCLE_TAGS,
    approvals_of,
    expected_description,
    registry_problems,
    retired_versions,
    tag_problems,
)
from govtrain.registry.identity import Identity, whoami
from govtrain.registry.model_card import description, with_approvals
from govtrain.registry.models import (
    CHAMPION,
    STATE_TAG,
    ModelRef,
    RegistryError,
    anchored_chain,
    client_for,
    current_alias,
    incomplete,
    resolve,
    verified_ledger,
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
    try:
        ledger = verified_ledger(config, client, version)
    except RegistryError as exc:
        raise Refused(str(exc)) from None
    failed = [c["id"] for r in ledger["records"] for c in r.get("checks", []) if blocks(c)]
    if ledger["outcome"] != "registered" or failed:
        raise Refused(f"{version.name}/{version.version}: failed gate {failed[0] if failed else ledger['outcome']}")
    return ledger


def _move(config: Config, client: Any, opened: chain.Open, step: str, target: Any, previous: Any, who: Identity,
          reason: str, ledger: dict, extra: dict | None = None) -> AliasMove:
    """Move the alias and append its record, under the chain's lock (the caller holds it): two moves at once
    are one after the other, each from the champion the one before left."""
    approver = who.name
    from_version = previous.version if previous else None
    previous_root = previous.tags.get("govtrain.ledger_root") if previous else None
    if chain.registered_root(opened.records, str(target.version)) != ledger["root"]:
        raise Refused(f"{model_label(target)}: the chain holds no registration of it with root {ledger['root'][:12]}…")
    client.set_registered_model_alias(target.name, CHAMPION, target.version)
    try:
        record = opened.append(step, version=str(target.version), model_root=ledger["root"],
                               details={"alias": CHAMPION, "from_version": from_version,
                                        "to_version": target.version, "approver": approver, "reason": reason,
                                        "previous_root": previous_root, "approver_identity": who.record(),
                                        **(extra or {})})
    except Exception:
        # No alias move without its record: put the alias back.
        if previous:
            client.set_registered_model_alias(target.name, CHAMPION, previous.version)
        else:
            client.delete_registered_model_alias(target.name, CHAMPION)
        raise
    model = target.name
    refresh_card(config, client, model, target)
    if previous:
        refresh_card(config, client, model, previous)
    summary = f"{step}: {from_version or '-'} -> {target.version} by {approver} at {record['finished']}: {reason}"
    if acknowledged := (extra or {}).get("drift_acknowledged"):
        summary += f" (drift acknowledged: {acknowledged['reason']})"
    client.set_registered_model_tag(model, f"govtrain.alias_history.{record['seq']:06d}", summary[:4900])
    client.set_model_version_tag(model, target.version, f"govtrain.{step}d_by", approver)
    client.set_model_version_tag(model, target.version, f"govtrain.{step}_reason", reason[:4900])
    return AliasMove(model, CHAMPION, from_version, str(target.version), record)


def model_label(version: Any) -> str:
    return f"{version.name}/{version.version}"


def refresh_card(config: Config, client: Any, model: str, version: Any) -> None:
    """Set the card (the version's description) to what the chain says: the registered card with the
    approvals recorded (registry/bound.py compares it on every read)."""
    records = chain.read_chain(config.chain_dir, model)
    full = client.get_model_version(model, version.version)
    try:
        text = expected_description(full, records)
    except Exception:  # noqa: BLE001 - registered before cards were bound: approvals into the card it has
        text = description(with_approvals(full.description or "", approvals_of(records,
                                                                               version.tags.get("govtrain.ledger_root"))))
    client.update_model_version(model, version.version, description=text)


def refuse_discrepancies(config: Config, client: Any, model: str, cards_of: tuple[str, ...] = ()) -> None:
    problems = registry_problems(client, config.chain_dir, model, cards_of)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise Refused(f"{problems[0]}{more}; nothing moved. `govtrain reconcile --model {model}` records it and "
                      f"restores the chain's state")


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
                      f"of duties, governance.separation_of_duties): someone else approves it, logged in as "
                      f"themselves where MLflow's basic-auth app runs, else with --approver NAME")


def newest_drift(records: list[dict], root: str) -> dict | None:
    """The newest drift run on the version with this ledger root (drift records name the monitored
    version's root, as every lifecycle record does), or None when none ran."""
    return next((r for r in reversed(records) if r["step"] == "drift" and r.get("model_root") == root), None)


def drift_acknowledgement(records: list[dict], label: str, root: str, acknowledge: str | None) -> dict | None:
    """What the promote record says about drift: None when the newest drift run on the version passed (or
    none ran); when it flagged drift, a refusal unless the approver acknowledged it with a reason."""
    drift = newest_drift(records, root)
    if drift is None or drift["decision"] != "fail":
        return None
    summary = drift["details"].get("summary", "drift")
    if not acknowledge:
        raise Refused(f"{label}: its newest drift run (at {drift['finished']}, chain record {drift['seq']} "
                      f"{drift['hash'][:12]}) flagged drift: {summary}; to promote it anyway, say why with "
                      f"--acknowledge-drift REASON")
    return {"reason": acknowledge, "drift_record": drift["hash"], "drift_seq": drift["seq"],
            "finished": drift["finished"], "summary": summary}


def promote(config: Config, model: str, version: str, approver: str | None, reason: str,
            acknowledge_drift: str | None = None) -> AliasMove:
    """Move champion to the version. A version whose newest drift run flagged drift is refused unless
    acknowledge_drift gives the approver's reason, recorded in the promote record (details.drift_acknowledged,
    naming the drift record); given where no drift stands, it is not recorded (the record then has none)."""
    if acknowledge_drift is not None and not acknowledge_drift.strip():
        raise ValueError("--acknowledge-drift: give the reason the drift is accepted, not an empty text")
    client = client_for(config.tracking_uri)
    who = approver_identity(config, approver)
    target = resolve(client, ModelRef(model, version=str(version)))
    ledger = check_version(config, client, target)
    check_duties(config, model, str(version), ledger, who)
    with anchored_chain(config, model) as opened:
        refuse_discrepancies(config, client, model, cards_of=(str(target.version),))
        previous = _current(client, model)
        if previous and previous.version == target.version:
            raise Refused(f"{model}/{version} is already the champion")
        # Read under the lock the move is recorded under: a drift run recorded meanwhile is seen, not raced.
        acknowledged = drift_acknowledgement(opened.records, model_label(target), ledger["root"],
                                             acknowledge_drift.strip() if acknowledge_drift else None)
        return _move(config, client, opened, "promote", target, previous, who, reason, ledger,
                     {"drift_acknowledged": acknowledged} if acknowledged else None)


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
    check = chain.verify_chain(config.chain_dir, model, keys.trusted_keys(config.governance.public_keys))
    if not check.ok:
        raise Refused(f"{model}: its chain does not verify: {check.problem}")
    with anchored_chain(config, model) as opened:
        refuse_discrepancies(config, client, model)
        stack = champion_stack(opened.records)
        if len(stack) < 2:
            raise Refused(f"{model}: no previous champion to return to")
        previous = _current(client, model)
        # No drift check: a rollback is the emergency way back, to a version that was champion before.
        target = resolve(client, ModelRef(model, version=stack[-2]))
        ledger = check_version(config, client, target)
        check_duties(config, model, str(target.version), ledger, who)
        return _move(config, client, opened, "rollback", target, previous, who, reason, ledger)


def discrepancies(config: Config, model: str) -> list[str]:
    """Every way the registry differs from the model's chain (registry/bound.py), the champion's card included."""
    client = client_for(config.tracking_uri)
    champion = current_alias(client, model, CHAMPION)
    return registry_problems(client, config.chain_dir, model, (str(champion.version),) if champion else ())


def reconcile(config: Config, model: str, approver: str | None, reason: str) -> dict:
    """Record every difference between the registry and the chain, then put the chain's state back: the
    champion alias where the chain's last move put it, each version's govtrain tags and card as bound.
    Versions gone from the registry are recorded as retired; versions the chain never registered are named
    (promote refuses them) and left for a person to delete."""
    client = client_for(config.tracking_uri)
    who = approver_identity(config, approver)
    with anchored_chain(config, model) as opened:
        registered = [r for r in opened.records if r["step"] == "register"]
        problems = registry_problems(client, config.chain_dir, model, tuple(r["version"] for r in registered))
        if not problems:
            raise Refused(f"{model}: the registry agrees with the chain; nothing to reconcile")
        actions, retired = [], []
        moves = chain.alias_history(opened.records, CHAMPION)
        recorded = str(moves[-1]["details"]["to_version"]) if moves else None
        champion = current_alias(client, model, CHAMPION)
        if (str(champion.version) if champion else None) != recorded:
            if recorded is None:
                client.delete_registered_model_alias(model, CHAMPION)
                actions.append(f"alias {CHAMPION} removed (the chain records no move of it)")
            else:
                client.set_registered_model_alias(model, CHAMPION, recorded)
                actions.append(f"alias {CHAMPION} -> version {recorded}, as chain record {moves[-1]['seq']} left it")
        existing = {str(v.version): v for v in client.search_model_versions(f"name = '{model}'")}
        for record in registered:
            version = existing.get(record["version"])
            if version is None:
                if record["version"] not in retired_versions(opened.records):
                    retired.append(record["version"])
                continue
            bound = record["details"].get("version_tags")
            if bound is None:
                continue
            for line in tag_problems(version, bound):
                actions.append(f"restored: {line}")
            for key, value in bound.items():
                if version.tags.get(key) != value:
                    client.set_model_version_tag(model, version.version, key, value)
            for key in [k for k in version.tags if k.startswith("govtrain.") and k not in bound
                        and k not in LIFECYCLE_TAGS]:
                client.delete_model_version_tag(model, version.version, key)
            full = client.get_model_version(model, version.version)
            expected = expected_description(full, opened.records)
            if (full.description or "") != expected:
                client.update_model_version(model, version.version, description=expected)
                actions.append(f"card of {model}/{version.version} restored to the registered card with its approvals")
        unregistered = [n for n, v in existing.items() if n not in {r["version"] for r in registered}
                        and v.tags.get(STATE_TAG) == "complete"]
        return opened.append("reconcile", version=None, model_root=None, decision="fail",
                             details={"reason": reason, "problems": problems, "actions": actions,
                                      "retired_versions": retired, "unregistered_versions": unregistered,
                                      "by": who.name, "identity": who.record()})


def history(config: Config, model: str) -> list[dict]:
    """Which version was champion when: one row per alias change, oldest first."""
    rows = []
    for record in chain.alias_history(chain.read_chain(config.chain_dir, model), CHAMPION):
        d = record["details"]
        rows.append({"seq": record["seq"], "at": record["finished"], "action": record["step"],
                     "from": d["from_version"], "to": d["to_version"], "approver": d["approver"],
                     "reason": d["reason"], "hash": record["hash"]})
    return rows
