"""govtrain promote / rollback / history: the champion alias, moved only with a chain record."""
from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

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


@app.command()
@user_errors
def promote(
    model: ModelNameOption,
    version: Annotated[str, typer.Option(help="Version to make champion.")],
    reason: ReasonOption,
    approver: ApproverOption = None,
    config: ModelConfigOption = None,
) -> None:
    """Move alias champion to a version that passed its gates and whose ledger verifies. Exit 1 if refused."""
    from govtrain.registry.lifecycle import promote as promote_version

    print_move(lambda: promote_version(config_for(config, f"{model}/{version}"), model, version, approver, reason))


@app.command()
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


def print_move(move_alias: Callable) -> None:
    """Run a promotion or rollback: a refusal by the rules is exit 1 with its reason, not a usage error."""
    from govtrain.registry.lifecycle import Refused

    try:
        move = move_alias()
    except Refused as exc:
        errors.print(f"refused: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    from govtrain.governance.audit import who

    details = move.record["details"]
    console.print(f"{move.model}@champion: {move.from_version or '-'} -> {move.to_version} by "
                  f"{who(details['approver'], details['approver_identity'])} (record {move.record['hash'][:12]})")


@app.command()
@user_errors
def history(
    model: ModelNameOption,
    config: ModelConfigOption = None,
) -> None:
    """Which version was champion when: every alias change with who, when and why."""
    from rich.table import Table

    from govtrain.registry.lifecycle import alias_check
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
    moved = alias_check(cfg, model)
    if moved:
        console.print(f"[red]DISCREPANCY[/]: {moved}")
