"""govtrain promote / rollback / history: the champion alias, moved only with a chain record."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from govtrain.pipelines.cli_common import (
    ApproverOption,
    ModelConfigOption,
    ModelNameOption,
    ReasonOption,
    app,
    config_for,
    console,
    errors,
    user_errors,
)

if TYPE_CHECKING:
    from govtrain.core.config import Config
    from govtrain.registry.lifecycle import AliasMove

T = TypeVar("T")


@app.command(rich_help_panel="Models")
@user_errors
def promote(
    model: Annotated[str, typer.Option(help="The version to make champion: NAME/VERSION (or NAME with --version).")],
    reason: ReasonOption,
    version: Annotated[str | None, typer.Option(help="The version, when --model gives only the name.")] = None,
    approver: ApproverOption = None,
    config: ModelConfigOption = None,
    acknowledge_drift: Annotated[str | None, typer.Option(
        help="Promote although the version's newest drift run flagged drift; this reason is recorded in the "
             "promote record, with the drift record it accepts.")] = None,
) -> None:
    """Move alias champion to a version that passed its gates and whose ledger verifies, and whose newest drift
    run (if any) passed, unless --acknowledge-drift says why the drift is accepted. Exit 1 if refused.

    Example: govtrain promote --model credit/3 --reason "report reviewed"
    """
    from govtrain.registry.lifecycle import promote as promote_version

    model, version = name_and_version(model, version)
    move = print_move(lambda: promote_version(config_for(config, f"{model}/{version}"), model, version, approver,
                                              reason, acknowledge_drift))
    acknowledged = move.record["details"].get("drift_acknowledged")
    if acknowledged:
        console.print(f"drift acknowledged: {acknowledged['summary']} (drift record {acknowledged['drift_record'][:12]}"
                      f" at {acknowledged['finished']}): {acknowledged['reason']}", markup=False, highlight=False)
    elif acknowledge_drift is not None:
        console.print("--acknowledge-drift: nothing to acknowledge (the newest drift run on this version passed, or "
                      "none ran); not recorded", markup=False, highlight=False)


@app.command(rich_help_panel="Models")
@user_errors
def rollback(
    model: ModelNameOption,
    reason: ReasonOption,
    approver: ApproverOption = None,
    config: ModelConfigOption = None,
) -> None:
    """Return alias champion to the previous champion, with a record. Exit 1 if refused."""
    from govtrain.registry.lifecycle import rollback as rollback_model

    print_move(lambda: rollback_model(config_for(config, model), model, approver, reason))


def name_and_version(model: str, version: str | None) -> tuple[str, str]:
    """NAME/VERSION, the way every model command names a version; NAME with --version still works."""
    name, slash, number = model.partition("/")
    if slash and version is not None and version != number:
        raise ValueError(f"--model {model} and --version {version} name two versions; give one")
    if not (number or version):
        raise ValueError(f"--model {model}: name the version, NAME/VERSION (e.g. {model}/1)")
    return name, number or str(version)


def unless_refused(action: Callable[[], T]) -> T:
    """Run a rule-bound action: a refusal by the rules is exit 1 with its reason, not a usage error."""
    from govtrain.registry.lifecycle import Refused

    try:
        return action()
    except Refused as exc:
        errors.print(f"refused: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def print_move(move_alias: Callable) -> AliasMove:
    """Run a promotion or rollback and say where the alias went."""
    move = unless_refused(move_alias)
    from govtrain.governance.audit import who

    details = move.record["details"]
    console.print(f"{move.model}@champion: {move.from_version or '-'} -> {move.to_version} by "
                  f"{who(details['approver'], details['approver_identity'])} (record {move.record['hash'][:12]})")
    return move


@app.command(rich_help_panel="Models")
@user_errors
def history(
    model: ModelNameOption,
    config: ModelConfigOption = None,
) -> None:
    """Which version was champion when: every alias change with who, when and why; and each served version's
    monitor windows, estimated against realised."""
    from rich.table import Table

    from govtrain.registry.lifecycle import discrepancies
    from govtrain.registry.lifecycle import history as alias_history

    cfg = config_for(config, model)
    rows = alias_history(cfg, model)
    table = Table(title=f"{model}: champion history", title_justify="left")
    for column in ("seq", "when", "action", "from", "to", "approver", "reason"):
        table.add_column(column)
    for row in rows:
        table.add_row(str(row["seq"]), row["at"], row["action"], str(row["from"] or "-"), str(row["to"]),
                      row["approver"], row["reason"])
    console.print(table if rows else f"{model}: no champion yet")
    served_history(cfg, model)
    problems = discrepancies(cfg, model)
    for problem in problems:
        errors.print(f"DISCREPANCY: {problem}", markup=False, highlight=False, soft_wrap=True)
    if problems:
        errors.print(f"`govtrain reconcile --model {model} --reason ...` records them and restores the chain's state",
                     markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def served_history(cfg: Config, model: str) -> None:
    """Per version, each monitor window's estimate beside what the labels later showed (as the audit report)."""
    from rich.table import Table

    from govtrain.governance.records import read_chain
    from govtrain.governance.report import MONITORING_HEADER, monitoring_rows

    chain = read_chain(cfg.chain_dir, model)
    for version in sorted({str(r.get("version")) for r in chain if r.get("step") == "monitor"}):
        table = Table(title=f"{model} version {version}: served traffic, estimated against realised",
                      title_justify="left")
        for column in MONITORING_HEADER:
            table.add_column(column)
        for row in monitoring_rows([r for r in chain if str(r.get("version")) == version]):
            table.add_row(*row)
        console.print(table)


@app.command(rich_help_panel="Models")
@user_errors
def reconcile(
    model: ModelNameOption,
    reason: ReasonOption,
    approver: ApproverOption = None,
    config: ModelConfigOption = None,
) -> None:
    """Record every way the registry differs from the model's chain (alias, tags, card, versions), then put
    the chain's state back. Exit 1 if there is nothing to reconcile."""
    from govtrain.registry.lifecycle import reconcile as reconcile_model

    record = unless_refused(lambda: reconcile_model(config_for(config, model), model, approver, reason))
    details = record["details"]
    for line in details["problems"]:
        console.print(f"recorded: {line}", markup=False, highlight=False)
    for line in details["actions"]:
        console.print(f"done: {line}", markup=False, highlight=False)
    for number in details["retired_versions"]:
        console.print(f"retired: version {number} (gone from the registry)", markup=False, highlight=False)
    for number in details["unregistered_versions"]:
        console.print(f"left: version {number} is not in the chain; promote refuses it (delete it in MLflow)",
                      markup=False, highlight=False)
    console.print(f"{model}: reconcile record {record['seq']} ({record['hash'][:12]})")


@app.command("complete-registration", rich_help_panel="Models")
@user_errors
def complete_registration(
    model: Annotated[str, typer.Option("--model", help="NAME/version of a version whose registration is incomplete.")],
    retire: Annotated[str | None, typer.Option(help="Delete the version instead, with this reason on its record.")]
    = None,
    config: ModelConfigOption = None,
) -> None:
    """Finish a registration that was killed between creating the version and writing its chain record (its
    ledger verified first), or retire the version with a record. No pipeline rerun needed."""
    from govtrain.registry.publish import complete_registration as complete

    record = complete(config_for(config, model), model, retire)
    what = "retired (deleted from the registry)" if record["step"] == "retire" else "registered, alias challenger"
    console.print(f"{model}: {what}; chain record {record['seq']} ({record['hash'][:12]})")
