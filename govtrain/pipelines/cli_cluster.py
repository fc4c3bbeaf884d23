"""govtrain mlflow ... (the MLflow server's set-up jobs on a cluster) and govtrain deploy (the champion
as a KServe InferenceService)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from govtrain.pipelines.cli_common import app, console, user_errors

mlflow_app = typer.Typer(help="Set-up jobs of a team's MLflow server (run by infra/base/mlflow-jobs.yaml).",
                         no_args_is_help=True)
app.add_typer(mlflow_app, name="mlflow", rich_help_panel="Cluster")

BackendOption = Annotated[str, typer.Option(envvar="MLFLOW_BACKEND_STORE_URI",
                                            help="The tracking database (default: $MLFLOW_BACKEND_STORE_URI).")]
AuthConfigOption = Annotated[Path | None, typer.Option(envvar="MLFLOW_AUTH_CONFIG_PATH",
                                                       help="The basic-auth app's config file (names its user "
                                                            "database); default: $MLFLOW_AUTH_CONFIG_PATH.")]


@mlflow_app.command("db-upgrade")
@user_errors
def db_upgrade(backend_store_uri: BackendOption, auth_config: AuthConfigOption = None) -> None:
    """Bring the tracking and auth databases to MLflow's head revisions (MLflow's own upgrade commands)."""
    from govtrain.registry.team import upgrade_databases

    upgrade_databases(backend_store_uri, auth_config, log=console.print)


@mlflow_app.command("wait-db")
@user_errors
def wait_db(backend_store_uri: BackendOption, auth_config: AuthConfigOption = None,
            timeout: Annotated[float, typer.Option(help="Seconds before giving up.")] = 900.0,
            poll: Annotated[float, typer.Option(help="Seconds between checks.")] = 5.0) -> None:
    """Wait until the databases are at MLflow's head revisions (the server's init container)."""
    from govtrain.registry.team import wait_for_schema

    wait_for_schema(backend_store_uri, auth_config, timeout, poll, log=console.print)


@mlflow_app.command("users")
@user_errors
def users(file: Annotated[Path, typer.Option(help="name:password per line (mounted from a Secret).")],
          tracking_uri: Annotated[str, typer.Option(envvar="MLFLOW_TRACKING_URI",
                                                    help="The server (default: $MLFLOW_TRACKING_URI).")]) -> None:
    """Create the basic-auth users the server does not have yet, as the admin named by
    MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD; existing users are left as they are."""
    from govtrain.registry.team import ensure_users, read_users

    created = ensure_users(tracking_uri, read_users(file), log=console.print)
    console.print(f"{len(created)} user(s) created")


@mlflow_app.command("grant")
@user_errors
def grant(user: Annotated[str, typer.Option(help="The basic-auth user.")],
          role: Annotated[str, typer.Option(help="registrar, approver or monitor (docs/security.md).")],
          model: Annotated[str, typer.Option(help="The registered model the role writes to.")],
          experiment: Annotated[str, typer.Option(help="The experiment runs are logged to.")] = "govtrain",
          tracking_uri: Annotated[str, typer.Option(envvar="MLFLOW_TRACKING_URI",
                                                    help="The server (default: $MLFLOW_TRACKING_URI).")] = "") -> None:
    """Give a user EDIT on exactly what their role writes, on a server whose default permission is READ, as
    the admin named by MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD."""
    from govtrain.registry.team import grant_role

    grant_role(tracking_uri, user, role, model, experiment, log=console.print)


@mlflow_app.command("bucket")
@user_errors
def bucket(name: Annotated[str, typer.Option(help="The artifact bucket.")] = "mlflow-artifacts") -> None:
    """Create the artifact bucket if it is missing (endpoint: $MLFLOW_S3_ENDPOINT_URL, keys: $AWS_*)."""
    from govtrain.registry.team import ensure_bucket

    ensure_bucket(name, log=console.print)


@app.command(rich_help_panel="Serving and UI")
@user_errors
def deploy(
    model: Annotated[str, typer.Option(help="The version to serve: NAME@alias (e.g. NAME@champion) or NAME/VERSION.")],
    config: Annotated[Path, typer.Option("--config", "-c", help="The cluster config (namespace, resources, "
                                                               "artifact store).")] = Path("configs/cluster.yaml"),
    tracking_uri: Annotated[str | None, typer.Option(help="Reach MLflow here instead of the config's in-cluster "
                                                          "URL (e.g. http://127.0.0.1:5000 via port-forward).")] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the manifest to this file.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the manifest; apply nothing.")] = False,
) -> None:
    """Serve a registered version with KServe (its MLflow runtime, protocol v2): render the
    InferenceService, check it and the version, and create or replace it in cluster.namespace."""
    import yaml

    from govtrain.core.config import load_config
    from govtrain.pipelines.deploy import apply, build_inference_service, build_serving_runtime
    from govtrain.registry.serving import servable_model

    cfg = load_config(config)
    isvc = build_inference_service(cfg, servable_model(tracking_uri or cfg.tracking_uri, model))
    resources = [build_serving_runtime(cfg), isvc]  # the runtime first: the predictor names it
    text = yaml.safe_dump_all(resources, sort_keys=False)
    if out is not None:
        out.write_text(text)
    console.print(text, markup=False, highlight=False)
    if dry_run:
        console.print("dry run: nothing applied")
        return
    for resource in resources:
        meta = resource["metadata"]
        console.print(f"{apply(resource)} {resource['kind']} {meta['namespace']}/{meta['name']}")
    if cfg.cluster.capture_uri:
        console.print(f"capture: KServe's logger writes Parquet under {cfg.cluster.capture_uri}/"
                      f"{isvc['metadata']['namespace']}/{isvc['metadata']['name']}/predictor/v"
                      f"{isvc['metadata']['labels']['govtrain/version']}; read it with govtrain monitor "
                      f"--kserve-log <that URI>", markup=False, highlight=False)
