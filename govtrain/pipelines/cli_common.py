"""What every govtrain command shares: the Typer app and its groups, the consoles, the one-line error
handling, and the option types. The commands live in cli.py, cli_audit.py and cli_models.py."""
from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from typer._click import core as click_core  # typer 0.29 carries its own click
from typer._click.exceptions import UsageError
from typer.core import TyperGroup, TyperOption

from govtrain.core.config import Config, ConfigError, load_config
from govtrain.core.secrets import redact, url_credential


def missing_options(command: click_core.Command, args: list[str]) -> list[str]:
    """The required options the command line does not give (click names only the first it meets)."""
    if "--help" in args:
        return []
    missing = []
    for param in command.params:
        if isinstance(param, TyperOption) and param.required and not param.envvar:
            names = [*param.opts, *param.secondary_opts]
            if not any(arg == name or arg.startswith(f"{name}=") for arg in args for name in names):
                missing.append(max(param.opts, key=len))
    return missing


class Commands(TyperGroup):
    """govtrain's command groups: a command missing several required options names them all at once."""

    def get_command(self, ctx: click_core.Context, cmd_name: str) -> click_core.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None or isinstance(command, TyperGroup):
            return command
        original = command.parse_args

        def parse_args(ctx: click_core.Context, args: list[str]) -> list[str]:
            missing = missing_options(command, args)
            if len(missing) > 1:
                raise UsageError(f"Missing options: {', '.join(missing)}.", ctx)
            return original(ctx, args)

        command.parse_args = parse_args  # type: ignore[method-assign]
        return command


app = typer.Typer(help="govtrain: an auditable, data-parallel training pipeline for tabular models on Kubeflow.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False, cls=Commands,
                  rich_markup_mode="markdown")  # a docstring's line breaks are not the help's
audit_app = typer.Typer(help="Verify and report on evidence ledgers.", no_args_is_help=True, cls=Commands)
app.add_typer(audit_app, name="audit", rich_help_panel="Audit")
expectations_app = typer.Typer(help="Great Expectations suites in expectations/.", no_args_is_help=True,
                               cls=Commands)
app.add_typer(expectations_app, name="expectations", rich_help_panel="Start")

console = Console(soft_wrap=True)  # long paths stay on one line, so they can be copied
errors = Console(stderr=True)
DEFAULT_CONFIG = Path("configs/demo.yaml")
_debug = False

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="YAML config file.")]
ModelConfigOption = Annotated[Path | None, typer.Option(
    "--config", "-c", help="YAML config file; default: the one the model version was registered with (found "
                           "through MLFLOW_TRACKING_URI, else this machine's embedded store).")]
ModelNameOption = Annotated[str, typer.Option(help="Registered model name.")]
ApproverOption = Annotated[str | None, typer.Option(
    help="Who approves. With MLflow's basic-auth app the approver is the logged-in user "
         "(MLFLOW_TRACKING_USERNAME) and another name is refused; without it, default the OS user, "
         "recorded as not authenticated.")]
ReasonOption = Annotated[str, typer.Option(help="Why.")]


@app.callback()
def main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False) -> None:
    global _debug
    _debug = debug
    # Library code logs; people read its warnings (and with --debug, everything) on stderr.
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def user_errors(func: Callable) -> Callable:
    """Turn any failure into one line on stderr and exit code 2 (tracebacks only with --debug)."""
    @wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:
            if _debug:
                traceback.print_exc()
            known = isinstance(exc, (ConfigError, ValueError, FileNotFoundError, RuntimeError))
            message = redact(str(exc).splitlines()[0]) if str(exc) else type(exc).__name__
            errors.print(f"error: {message}" if known else f"error: {type(exc).__name__}: {message}",
                         markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
    return wrapper


KeyOption = Annotated[list[str] | None, typer.Option(
    "--public-key", help="Trusted Ed25519 public key (base64); repeatable. Default: this machine's "
                           "trusted keys (<state>/keys/trusted.pub) and governance.public_keys.")]
ModelOption = Annotated[str, typer.Option("--model", help="NAME, NAME@alias or NAME/version.")]


MATCHED = ("target", "task", "numeric", "categorical")  # what a config must share with a model it is used on


def config_for(config: Path | None, model: str) -> Config:
    """The config a model command works with: --config (the operator's own), refused when it does not describe
    the model's data; else the config the version was registered with, on this machine's tracking URI, with
    the trust settings of this machine's policy (core/policy.py), never those stored in the registry."""
    import os

    from govtrain.core.config import resolve
    from govtrain.core.policy import with_operator_policy
    from govtrain.core.state import embedded_tracking_uri, state_dir
    from govtrain.registry.models import client_for, parse_ref, stored_config
    from govtrain.registry.models import resolve as resolve_version

    given = load_config(config) if config is not None else None
    tracking = given.tracking_uri if given else os.environ.get("MLFLOW_TRACKING_URI") or embedded_tracking_uri()
    if found := url_credential(tracking):
        raise ConfigError(f"MLFLOW_TRACKING_URI holds {found}; set MLFLOW_TRACKING_USERNAME and "
                          "MLFLOW_TRACKING_PASSWORD instead, so it is never written into a record")
    version = resolve_version(client_for(tracking), parse_ref(model))
    if given is not None:
        try:
            stored = stored_config(version)
        except ValueError:
            return given  # registered before configs were stored: nothing to compare with
        for key in MATCHED:
            ours, theirs = getattr(given.dataset, key), getattr(stored.dataset, key)
            if ours != theirs:
                raise ConfigError(f"{config}: does not describe model {version.name}/{version.version}: dataset.{key} "
                                  f"is {ours!r} here and {theirs!r} in the model (leave out --config to use the "
                                  "model's own)")
        return given
    stored = stored_config(version)
    stored.registry.tracking_uri = tracking
    # Trust is not the registry's to say: keys, separation of duties and the chains are this machine's policy.
    return with_operator_policy(resolve(stored, Path.cwd()), state_dir())


def check_paths(config: Config, config_file: Path) -> None:
    """The files a run reads exist: a missing one is named by its key and the folder a relative path was
    resolved against (the config file's, not the shell's)."""
    for key, path in (("dataset.path", config.dataset.path), ("validation.suite", config.validation.suite),
                      ("evaluation.ood_data", config.evaluation.ood_data)):
        if isinstance(path, Path) and not path.exists():  # an object-store URI is read, and checked, by prepare
            raise ConfigError(f"{config_file}: {key} is {path}, which does not exist (a relative path is resolved "
                              f"against the config file's folder, {config_file.resolve().parent})")
