"""What the registry shows, checked against the chain: the champion alias, each version's govtrain tags and
model card, and the set of versions. MLflow is writable by every user who may register, so none of it is
trusted on its own; each is bound to a signed chain record when it is written (the register record holds
the version's tags and its card's digest; promotions and rollbacks say where the alias went) and compared
on every read. `registry_problems` says each difference in one line; `reconcile` records them and puts the
chain's state back."""
from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

from govtrain.governance import chain
from govtrain.registry.model_card import description, with_approvals
from govtrain.registry.models import CHAMPION, STATE_TAG, current_alias

CARD_ARTIFACT = "model_card/model_card.md"
LIFECYCLE_TAGS = ("govtrain.promoted_by", "govtrain.promote_reason", "govtrain.rollbackd_by",
                  "govtrain.rollback_reason", STATE_TAG)  # written after registration, from chain records


def binding(version_tags: dict[str, str], card_md: str) -> dict[str, Any]:
    """What the register record binds: the version's govtrain tags as created, and its card's digest."""
    return {"version_tags": {k: v for k, v in sorted(version_tags.items())
                             if k.startswith("govtrain.") and k not in LIFECYCLE_TAGS},
            "card_sha256": hashlib.sha256(card_md.encode()).hexdigest()}


def registered_card(version: Any) -> str:
    """The version's card as registered (the run artifact), before any approval was added."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path=CARD_ARTIFACT, dst_path=tmp)
        return Path(path).read_text()


def approvals_of(records: list[dict], root: str | None) -> list[dict]:
    return [r for r in chain.alias_history(records, CHAMPION)
            if r["model_root"] == root or r["details"].get("previous_root") == root]


def expected_description(version: Any, records: list[dict]) -> str:
    """The description the chain says this version has: its registered card with the approvals recorded."""
    card = registered_card(version)
    register = _register_record(records, str(version.version))
    bound = (register or {}).get("details", {}).get("card_sha256")
    if bound is not None and hashlib.sha256(card.encode()).hexdigest() != bound:
        raise ValueError(f"model card artifact of {version.name}/{version.version} is not the one registered")
    approvals = approvals_of(records, version.tags.get("govtrain.ledger_root"))
    return description(with_approvals(card, approvals) if approvals else card,  # else: "not yet approved"
                       str(version.version))


def _register_record(records: list[dict], version: str) -> dict | None:
    return next((r for r in records if r["step"] == "register" and r["version"] == version), None)


def retired_versions(records: list[dict]) -> set[str]:
    """Versions a reconcile record accepted as gone from the registry, or a retire record deleted."""
    return ({v for r in records if r["step"] == "reconcile" for v in r["details"].get("retired_versions", [])}
            | {r["version"] for r in records if r["step"] == "retire"})


def tag_problems(version: Any, bound: dict[str, str]) -> list[str]:
    label = f"{version.name}/{version.version}"
    tags = version.tags
    problems = [f"tag {k} of {label} is {tags.get(k)!r} in the registry, but the chain registered {v!r}"
                for k, v in bound.items() if tags.get(k) != v]
    problems += [f"tag {k} of {label} ({tags[k]!r}) was added in the registry; the chain registered no such tag"
                 for k in sorted(tags) if k.startswith("govtrain.") and k not in bound and k not in LIFECYCLE_TAGS]
    return problems


def registry_problems(client: Any, chain_dir: Path, model: str, cards_of: tuple[str, ...] = ()) -> list[str]:
    """Every difference between the registry and the model's chain, one line each: the champion alias,
    versions deleted or never registered, govtrain tags edited, and (for the versions in cards_of, which
    costs a download each) the model card."""
    records = chain.read_chain(chain_dir, model)
    problems = []
    champion = current_alias(client, model, CHAMPION)
    moved = chain.alias_discrepancy(records, CHAMPION, model, str(champion.version) if champion else None)
    if moved:
        problems.append(moved)
    try:
        versions = {str(v.version): v for v in client.search_model_versions(f"name = '{model}'")}
    except Exception:  # noqa: BLE001 - a model gone from MLflow entirely: every registered version is gone
        versions = {}
    retired = retired_versions(records)
    for record in records:
        if record["step"] != "register" or record["version"] in retired:
            continue
        version = versions.get(record["version"])
        if version is None:
            problems.append(f"version {record['version']} of {model} (registered in chain record {record['seq']}) "
                            f"is gone from the registry")
            continue
        bound = record["details"].get("version_tags")
        if bound is not None:
            problems += tag_problems(version, bound)
        if record["version"] in cards_of and record["details"].get("card_sha256"):
            full = client.get_model_version(model, version.version)
            try:
                if (full.description or "") != expected_description(full, records):
                    problems.append(f"the model card (description) of {model}/{version.version} was edited in the "
                                    f"registry: it is not the registered card with the chain's approvals")
            except (ValueError, OSError) as exc:
                problems.append(str(exc))
    registered = {r["version"] for r in records if r["step"] == "register"}
    for number, version in sorted(versions.items(), key=lambda kv: int(kv[0])):
        if number not in registered and version.tags.get(STATE_TAG) == "complete":
            problems.append(f"version {number} of {model} is in the registry as complete, but the chain never "
                            f"registered it")
    return problems
