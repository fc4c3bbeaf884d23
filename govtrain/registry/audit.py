"""The auditor's commands on a registered model: fetch its sealed bundle from MLflow, then check it
(governance.audit does the checking), export it for offline verification, or report its RMF coverage."""
from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from govtrain.core.config import Config
from govtrain.governance import chain, keys
from govtrain.governance.audit import MANIFEST, ModelAudit, audit_bundle
from govtrain.governance.hashing import canonical_json
from govtrain.governance.ledger import LEDGER_FILE
from govtrain.governance.report import render_html, render_markdown, report_data
from govtrain.registry.bound import registry_problems
from govtrain.registry.models import (
    chain_anchor,
    client_for,
    fetch_bundle,
    fetch_model_into,
    incomplete,
    parse_ref,
    resolve,
)


@contextmanager
def fetched(config: Config, ref_text: str) -> Iterator[tuple[Any, Path]]:
    """(model version, its sealed bundle downloaded from MLflow with the model's own files under model/, which
    verify compares with the digests the ledger lists), removed again afterwards."""
    client = client_for(config.tracking_uri)
    version = resolve(client, parse_ref(ref_text))
    bundle = fetch_bundle(client, version)
    try:
        fetch_model_into(version, bundle)
        yield version, bundle
    finally:
        shutil.rmtree(bundle.parent, ignore_errors=True)


@contextmanager
def _removed_after(path: Path) -> Iterator[None]:
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _audit_fetched(config: Config, version: Any, bundle: Path, trusted: list[str] | None,
                   allow_unsigned: bool = False) -> ModelAudit:
    return audit_bundle(version.name, version.version, bundle, config.chain_dir,
                        trusted or keys.trusted_keys(config.governance.public_keys),
                        version.tags.get("govtrain.ledger_root"),
                        chain_anchor(client_for(config.tracking_uri), version.name), allow_unsigned,
                        anchor_file=True)


def audit_model(config: Config, ref_text: str, trusted: list[str] | None = None,
                allow_unsigned: bool = False) -> ModelAudit:
    """Through MLflow: fetch the version's bundle and check it, its registry tag and its chain; for
    NAME@champion also that the alias is where the chain's last promotion or rollback put it."""
    with fetched(config, ref_text) as (version, bundle):
        result = _audit_fetched(config, version, bundle, trusted, allow_unsigned)
    if unfinished := incomplete(version):  # said first: it explains a missing chain record, and what completes it
        result.ok, result.problem = False, unfinished
    return bound_to_chain(config, version, result)


def bound_to_chain(config: Config, version: Any, result: ModelAudit) -> ModelAudit:
    """However the version was named (NAME, NAME@alias, NAME/version): the registry's alias, tags, versions
    and this version's card must be what the chain says (registry/bound.py)."""
    if not result.ok:
        return result
    problems = registry_problems(client_for(config.tracking_uri), config.chain_dir, version.name,
                                 (str(version.version),))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        result.ok, result.problem = False, f"{problems[0]}{more}"
    return result


def export(config: Config, ref_text: str, out: Path) -> Path:
    """A zip with everything needed to verify offline: the sealed bundle, the model's chain, a manifest."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with fetched(config, ref_text) as (version, bundle), _removed_after(tmp):
        folder = chain.chain_path(config.chain_dir, version.name) / "records"
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(bundle.rglob("*")):
                if path.is_file():
                    archive.write(path, f"bundle/{path.relative_to(bundle).as_posix()}")
            for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
                archive.write(path, f"chain/records/{path.name}")
            manifest = {"model": version.name, "version": str(version.version),
                        "root": version.tags.get("govtrain.ledger_root"), "public_keys": config.governance.public_keys,
                        "chain_head": chain_anchor(client_for(config.tracking_uri), version.name)}
            archive.writestr(MANIFEST, canonical_json(manifest))
        tmp.replace(out)  # the zip appears whole or not at all
    return out


def report(config: Config, ref_text: str, out_dir: Path) -> tuple[ModelAudit, Path, Path]:
    with fetched(config, ref_text) as (version, bundle):
        audit = bound_to_chain(config, version, _audit_fetched(config, version, bundle, None))
        ledger = json.loads((bundle / LEDGER_FILE).read_bytes())
        data = report_data(config, audit, ledger, bundle)
    out_dir.mkdir(parents=True, exist_ok=True)
    md, html = out_dir / "audit_report.md", out_dir / "audit_report.html"
    md.write_text(render_markdown(data))
    html.write_text(render_html(data))
    return audit, md, html
