"""govtrain audit: verify, report, export, keygen."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from govtrain.core.config import Config, ConfigError, load_config
from govtrain.core.state import state_dir
from govtrain.pipelines.cli_common import (
    DEFAULT_CONFIG,
    ConfigOption,
    KeyOption,
    ModelConfigOption,
    ModelOption,
    audit_app,
    config_for,
    console,
    errors,
    user_errors,
)

AllowUnsignedOption = Annotated[bool, typer.Option(
    "--allow-unsigned", help="Accept a ledger or chain record with no signature (hashes still checked).")]


def trusted_keys(given: list[str] | None, config: Path | Config | None) -> list[str]:
    """The keys --public-key names; else this machine's trusted keys plus governance.public_keys of the config
    (when the config file exists: a run folder or a zip can be checked without one)."""
    from govtrain.governance.keys import trusted_keys as local_trust

    if given:
        return list(given)
    if config is None:
        return local_trust([])
    if isinstance(config, Path):
        return local_trust(load_config(config).governance.public_keys if config.is_file() else [])
    return local_trust(config.governance.public_keys)


def signer(key: str | None, trusted_by: str | None = None) -> str:
    from govtrain.governance.signing import short

    if not key:
        return "NOT SIGNED (--allow-unsigned)"
    return f"signed by {short(key)}" + (f" (trusted by {trusted_by})" if trusted_by else "")


@audit_app.command("verify")
@user_errors
def audit_verify(
    path: Annotated[Path | None, typer.Argument(help="A sealed run folder or an exported .zip.")] = None,
    model: Annotated[str | None, typer.Option("--model",
                                              help="Or: NAME, NAME@alias or NAME/version in MLflow.")] = None,
    public_key: KeyOption = None,
    allow_unsigned: AllowUnsignedOption = False,
    config: ModelConfigOption = None,
) -> None:
    """Recompute every record hash, parent link, artifact digest and signature (by a trusted key), and the
    chain against its anchor in the registry. Exit 0 intact, 1 not."""
    from govtrain.governance.audit import audit_export
    from govtrain.governance.ledger import verify
    from govtrain.registry.audit import audit_model

    if (path is None) == (model is None):
        raise ConfigError("give a PATH (run folder or exported .zip) or --model, not both")
    cfg = config_for(config, model) if model is not None else None
    trusted = trusted_keys(public_key, cfg or config)
    if path is not None and path.suffix != ".zip":
        result = verify(path, trusted_keys=trusted, allow_unsigned=allow_unsigned)
        if not result.ok:
            fail(result.problem)
        console.print(f"OK: {result.records} records, {result.files_checked} files checked, "
                      f"{result.data_not_supplied} data files not supplied, {result.unsealed_checked} unsealed "
                      f"files matched unsealed.json; root {result.root}; "
                      f"{signer(result.signed_by, result.trusted_by)}")
        raise typer.Exit(0)
    if model is not None:
        assert cfg is not None
        audit = audit_model(cfg, model, trusted, allow_unsigned)
    else:
        assert path is not None  # a .zip, by the test above
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        audit = audit_export(path, trusted, allow_unsigned)
    if not audit.ok:
        fail(audit.problem)
    result = audit.ledger
    chain_keys = ", ".join(signer(k) for k in audit.chain_signed_by) or "no records"
    console.print(f"OK: {audit.model} version {audit.version}: {result.records} records, "
                  f"{result.files_checked} files checked, {audit.chain_records} chain records "
                  f"({len(audit.lifecycle)} about this version); root {audit.root}; ledger "
                  f"{signer(result.signed_by, result.trusted_by)}; chain {chain_keys}")
    raise typer.Exit(0)


def fail(problem: str | None) -> None:
    errors.print(f"FAILED: {problem}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(1)


@audit_app.command("report")
@user_errors
def audit_report(
    model: ModelOption,
    out: Annotated[Path | None, typer.Option(help="Folder for audit_report.md and .html.")] = None,
    config: ModelConfigOption = None,
) -> None:
    """NIST AI RMF coverage of a model version: evidenced / artefact linked / gap, gates, approvals, drift."""
    from govtrain.registry.audit import report

    cfg = config_for(config, model)
    audit, md, html = report(cfg, model, out or state_dir() / "audit" / model.replace("/", "-").replace("@", "-"))
    verdict = "verified" if audit.ok else f"[red]DOES NOT VERIFY[/]: {audit.problem}"
    console.print(f"{audit.model} version {audit.version}: {verdict}\n{md}\n{html}")
    raise typer.Exit(0 if audit.ok else 1)


@audit_app.command("export")
@user_errors
def audit_export_cmd(
    model: ModelOption,
    out: Annotated[Path, typer.Option(help="The zip to write.")],
    config: ModelConfigOption = None,
) -> None:
    """Everything needed to verify a model version offline, in one zip."""
    from govtrain.registry.audit import export

    console.print(f"wrote {export(config_for(config, model), model, out)}  (check it: govtrain audit verify {out})")


@audit_app.command("keygen")
@user_errors
def audit_keygen(out: Annotated[Path, typer.Option(help="File for the private key (mode 0600).")]) -> None:
    """Make an Ed25519 signing key: the private key goes to a file, the public key to stdout."""
    from govtrain.governance.signing import new_key

    if out.exists():
        raise FileExistsError(f"{out}: exists; not overwriting a key")
    private, public = new_key()
    out.touch(mode=0o600)
    out.write_text(private + "\n")
    console.print(f"private key: {out}  (export GOVTRAIN_SIGNING_KEY_FILE={out}; never commit it)")
    console.print(f"public key (put it in governance.public_keys): {public}")


@audit_app.command("trust-key")
@user_errors
def audit_trust_key(
    public_key: Annotated[str, typer.Option("--public-key", help="The Ed25519 public key (base64) to trust.")],
    reason: Annotated[str, typer.Option(help="Why, for the key log.")],
) -> None:
    """Trust a key from now on: an entry in this machine's key log, signed by the signing key in use, which the
    log must already trust (a key cannot trust itself in). Rotation: trust the new key, switch to it, retire
    the old one."""
    key_log_entry("trust", public_key, reason)


@audit_app.command("retire-key")
@user_errors
def audit_retire_key(
    public_key: Annotated[str, typer.Option("--public-key", help="The Ed25519 public key (base64) to retire.")],
    reason: Annotated[str, typer.Option(help="Why, for the key log.")],
) -> None:
    """Stop trusting a key from now on: what it signed before still verifies, what it signs after does not."""
    key_log_entry("retire", public_key, reason)


def key_log_entry(step: str, public_key: str, reason: str) -> None:
    """A trust or retire entry, signed by the signing key in use (governance/keylog.py checks it may)."""
    from govtrain.governance.keylog import change
    from govtrain.governance.keys import signing_key

    record = change(step, public_key, reason, signing_key())
    console.print(f"key log entry {record['seq']}: {step} {public_key} from {record['finished']}")


@audit_app.command("repair-chain")
@user_errors
def audit_repair_chain(
    model: Annotated[str, typer.Option(help="Registered model name whose chain does not verify.")],
    reason: Annotated[str, typer.Option(help="Why, for the repair record.")] = "a record did not verify",
    allow_unsigned: AllowUnsignedOption = False,
    config: ModelConfigOption = None,
) -> None:
    """Set aside the first chain record that does not verify and every record after it (moved under the
    chain's set-aside/ folder, never deleted) and append a `repair` record naming each file and its digest."""
    from govtrain.core.policy import load_policy
    from govtrain.governance.chain import repair_chain
    from govtrain.governance.sealed_runs import RUNS
    from govtrain.registry.models import chain_anchor, client_for, set_anchor

    if model == RUNS:  # the chain of this machine's runs, anchored in the experiment of the config (if any)
        from govtrain.registry.runs import anchor_runs, runs_anchor

        path = config if config is not None else DEFAULT_CONFIG
        own = load_config(path) if path.is_file() else None
        chain_dir = own.chain_dir if own else (state_dir() / load_policy().chain_dir).resolve()
        outside = runs_anchor(own.tracking_uri, own.registry.experiment) if own else None
        record = repair_chain(chain_dir, RUNS, reason, trusted_keys(None, own), allow_unsigned,
                              **({"outside_anchor": outside} if outside is not None else {}))
        if own is not None:
            anchor_runs(own.tracking_uri, own.registry.experiment, f"{record['seq']}:{record['hash']}")
    else:
        cfg = config_for(config, model)
        record = repair_chain(cfg.chain_dir, model, reason, trusted_keys(None, cfg), allow_unsigned,
                              outside_anchor=chain_anchor(client_for(cfg.tracking_uri), model))
        set_anchor(cfg, model, record)
    details = record["details"]
    moved = (f"set aside {', '.join(f['file'] for f in details['set_aside'])} under {details['set_aside_folder']}"
             if details["set_aside"] else "set aside nothing")
    console.print(f"{model}: kept {details['kept_records']} record(s); {moved} ({details['problem']}); "
                  f"repair record {record['hash'][:12]}")


@audit_app.command("runs")
@user_errors
def audit_runs(
    public_key: KeyOption = None,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Every run sealed here is still where it was sealed: the chain of runs verifies (each record signed
    by a trusted key) and each run folder holds the ledger it recorded. Exit 0, or 1 naming what is gone."""
    from govtrain.governance.chain import ANCHOR_FILE, anchor_problem, local_anchor, read_chain, verify_chain
    from govtrain.governance.sealed_runs import RUNS, missing_runs

    cfg = load_config(config) if config.is_file() else None
    chain_dir = cfg.chain_dir if cfg else state_dir() / "chains"
    check = verify_chain(chain_dir, RUNS, trusted_keys(public_key, cfg or config))
    if not check.ok:
        fail(check.problem)
    records = read_chain(chain_dir, RUNS)
    cut = anchor_problem(records, RUNS, local_anchor(chain_dir, RUNS), ANCHOR_FILE, slack=1)
    if cut is None and cfg is not None:  # and the anchor outside this machine's files, where there is one
        from govtrain.registry.runs import RUNS_ANCHOR_TAG, runs_anchor

        outside = runs_anchor(cfg.tracking_uri, cfg.registry.experiment)
        where = f"the registry (experiment {cfg.registry.experiment}, tag {RUNS_ANCHOR_TAG})"
        cut = anchor_problem(records, RUNS, outside, where) if outside is not None else None
    if cut:
        fail(f"{cut} (`govtrain audit repair-chain --model {RUNS}` records it)")
    count, problems = missing_runs(chain_dir, state_dir() / "runs")
    if problems:
        fail(f"{problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    console.print(f"OK: {count} sealed runs recorded, every folder present with the ledger it sealed")
