"""govtrain validate: one table against one expectation suite, as the pipeline's validate step runs it."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from govtrain.core.config import load_config
from govtrain.core.state import state_dir
from govtrain.pipelines.cli_common import app, console, user_errors


@app.command("validate", rich_help_panel="Start")
@user_errors
def validate_command(
    data: Annotated[Path, typer.Option(help="The table (CSV, compressed CSV or Parquet).")],
    suite: Annotated[Path, typer.Option(help="A Great Expectations 1.x suite (JSON).")],
    out: Annotated[Path | None, typer.Option(help="Folder for results.json, summary.json and data_docs.html; "
                                                  "default under the state folder.")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Read the table with this config's "
                                                                       "dataset.csv options.")] = None,
    engine: Annotated[str, typer.Option(help="native: GE's verdicts from govtrain's column engine where it "
                                             "supports the type, GE for the rest; ge: GE for every expectation.")
                      ] = "native",
    docs: Annotated[bool, typer.Option(help="Write GE's Data Docs page (starting GE's renderer takes ~4 s).")
                    ] = True,
) -> None:
    """Validate one table against one suite. Exit 0 when no critical expectation failed, 1 when one did,
    2 on an error."""
    from datetime import UTC, datetime

    from rich.table import Table

    from govtrain.components.validate import validate_table

    if engine not in ("native", "ge"):
        raise typer.BadParameter(f"--engine is {engine!r}; use 'native' or 'ge'")
    options = load_config(config).dataset.csv if config else None
    folder = out or state_dir() / "validate" / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    rows = validate_table(data, suite, folder, options, engine=engine, docs=docs)
    failed = [r for r in rows if not r["success"]]
    critical = [r for r in failed if r["severity"] == "critical"]
    if failed:
        table = Table(title="failed expectations", title_justify="left")
        for column in ("column", "expectation", "severity", "observed", "expected", "unexpected"):
            table.add_column(column)
        for row in failed:
            table.add_row(str(row["column"] or ""), row["expectation"], row["severity"], str(row["observed"])[:60],
                          str(row["expected"])[:60], str(row["unexpected_count"] if row["unexpected_count"] is not None
                                                         else ""))
        console.print(table)
    verdict = "[red]FAILED[/]" if critical else "[green]passed[/]"
    console.print(f"{verdict}: {len(rows)} expectations, {len(failed)} failed ({len(critical)} critical); "
                  f"results: {folder}")
    raise typer.Exit(1 if critical else 0)
