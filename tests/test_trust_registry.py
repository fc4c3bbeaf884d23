"""Trust, round 2, as the attacks: an insider with MLflow write access works through MLflow's own client
and plain file operations, never through govtrain, and govtrain's commands (run as real processes, with no
--config: the version's stored config) must notice, refuse, and record the repair. Issue 34."""
import getpass
import json
import multiprocessing
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow import MlflowClient

from govtrain.core.config import Config
from govtrain.governance import chain, signing
from govtrain.pipelines.run import run_local
from govtrain.registry.lifecycle import promote
from tests.test_cli import govtrain

pytestmark = pytest.mark.slow  # real pipeline runs and an MLflow server

NAME = "trust-credit"


@pytest.fixture(scope="module")
def life(small_data, mlflow_server, isolated_state, tmp_path_factory):
    """Two registered versions of one model, version 1 champion; the chains in the state folder's default
    place (what this machine's policy says), as a user who never wrote a policy file has them."""
    from conftest import base_config

    from govtrain.core.config import load_config

    raw = base_config(small_data.data)
    raw["registry"] = {"tracking_uri": mlflow_server, "model_name": NAME}
    path = tmp_path_factory.mktemp("trust-cfg") / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path)
    runs = [run_local(config, isolated_state, show_progress=False) for _ in range(2)]
    assert [r.registration["version"] for r in runs] == ["1", "2"]
    promote(config, NAME, "1", "alice", "first champion")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        yield config, runs, MlflowClient(mlflow_server), small_data


@pytest.fixture(autouse=True)
def tracking(mlflow_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)  # the CLI finds the registry, nothing else
    mlflow.set_tracking_uri(mlflow_server)


def cli(*args, cwd=None):
    return govtrain(*args, cwd=cwd)


def verifies(ref=NAME):
    out = cli("audit", "verify", "--model", ref)
    return out.returncode, (out.stdout + out.stderr).strip()


def stored_config_of(client, version):
    local = mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path="govtrain/config.json")
    return Config.from_json(Path(local).read_text())


def replace_stored_config(client, version, config, tmp_path):
    """The insider's edit: the version's stored config rewritten and its digest tag set to match."""
    folder = tmp_path / "govtrain"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(config.to_json())
    client.log_artifact(version.run_id, str(folder / "config.json"), artifact_path="govtrain")
    client.set_model_version_tag(NAME, version.version, "govtrain.config_digest", config.digest())


def test_trust_policy_comes_from_the_operator_not_the_registry(life, tmp_path):
    config, runs, client, _ = life
    v2 = client.get_model_version(NAME, "2")
    original = stored_config_of(client, v2)
    attacker_seed, attacker_key = signing.new_key()
    forged = original.model_copy(deep=True)
    forged.governance.separation_of_duties = False
    forged.governance.public_keys = [attacker_key]
    replace_stored_config(client, v2, forged, tmp_path)
    try:
        # Before: the registrar promoted their own version with the stored config's policy, and verify said OK.
        out = cli("promote", "--model", NAME, "--version", "2", "--reason", "self-approval",
                  "--approver", getpass.getuser())
        assert out.returncode == 2
        assert "its stored config (digest" in out.stderr and "is not the config its signed ledger was made with" \
            in out.stderr and "changed in the registry; refused" in out.stderr
        code, said = verifies(f"{NAME}/2")
        assert code == 2 and "changed in the registry" in said
    finally:
        replace_stored_config(client, v2, original, tmp_path)
    # The digest alone is not what stops it: the policy of this machine is used whatever is stored.
    from govtrain.core.policy import with_operator_policy

    assert with_operator_policy(forged).governance.separation_of_duties is True
    assert with_operator_policy(forged).governance.public_keys == []
    out = cli("promote", "--model", NAME, "--version", "2", "--reason", "self", "--approver", getpass.getuser())
    assert out.returncode == 1 and "separation of duties" in out.stderr


def test_a_version_resigned_with_a_key_the_operator_never_trusted_is_refused(life, tmp_path):
    """A new version made in MLflow from version 2's run: its ledger re-signed with the attacker's key (the
    signature itself valid), the stored config left alone or given that key."""
    config, runs, client, _ = life
    v2 = client.get_model_version(NAME, "2")
    seed, public = signing.new_key()
    bundle = Path(mlflow.artifacts.download_artifacts(run_id=v2.run_id, artifact_path="evidence",
                                                      dst_path=str(tmp_path / "forged")))
    ledger = json.loads((bundle / "ledger.json").read_bytes())
    ledger["signature"] = signing.sign(ledger["root"], seed)
    (bundle / "ledger.json").write_text(json.dumps(ledger))
    experiment = client.get_experiment_by_name(config.registry.experiment).experiment_id
    run = client.create_run(experiment)
    client.log_artifacts(run.info.run_id, str(bundle), artifact_path="evidence")
    stored = mlflow.artifacts.download_artifacts(run_id=v2.run_id, artifact_path="govtrain/config.json",
                                                 dst_path=str(tmp_path / "cfg"))
    client.log_artifact(run.info.run_id, stored, artifact_path="govtrain")
    card = mlflow.artifacts.download_artifacts(run_id=v2.run_id, artifact_path="model_card/model_card.md",
                                               dst_path=str(tmp_path / "card"))
    client.log_artifact(run.info.run_id, card, artifact_path="model_card")
    tags = {k: v for k, v in v2.tags.items() if k.startswith("govtrain.")}
    forged = client.create_model_version(NAME, v2.source, run_id=run.info.run_id, tags=tags,
                                         model_id=v2.source.rsplit("/", 1)[-1])
    try:
        out = cli("promote", "--model", NAME, "--version", forged.version, "--reason", "looks fine",
                  "--approver", "bob")
        assert out.returncode == 1
        assert f"signed by ed25519:{public[:16]}…, which is not a trusted key" in out.stderr
        code, said = verifies(f"{NAME}/{forged.version}")
        assert code == 1 and "not a trusted key" in said
    finally:
        client.delete_model_version(NAME, forged.version)
    assert verifies()[0] == 0


def test_a_cut_chain_takes_no_drift_record_and_the_repair_records_the_cut(life, tmp_path):
    config, runs, client, data = life
    folder = chain.chain_path(config.chain_dir, NAME) / "records"
    drift = cli("drift", "--model", f"{NAME}@champion", "--current", data.current, "--out", tmp_path / "d1")
    assert drift.returncode == 0, drift.stderr
    newest = sorted(folder.glob("*.json"))[-1]
    cut_record = json.loads(newest.read_bytes())
    assert cut_record["step"] == "drift"
    newest.unlink()  # the insider removes the drift finding
    code, said = verifies()
    assert code == 1 and said.endswith("records were removed from the end")
    # Before: the next routine drift run appended, re-anchored, and verify said OK. Now it is refused.
    again = cli("drift", "--model", f"{NAME}@champion", "--current", data.current, "--out", tmp_path / "d2")
    assert again.returncode == 2 and "records were removed from the end; nothing appended" in again.stderr
    assert "govtrain audit repair-chain --model trust-credit" in again.stderr
    assert verifies()[0] == 1
    repaired = cli("audit", "repair-chain", "--model", NAME, "--reason", "drift record deleted by hand")
    assert repaired.returncode == 0, repaired.stderr
    repair = chain.read_chain(config.chain_dir, NAME)[-1]
    assert repair["step"] == "repair" and repair["seq"] == cut_record["seq"]
    assert repair["details"]["anchors"]["the registry"] == f"{cut_record['seq']}:{cut_record['hash']}"
    assert verifies()[0] == 0


def test_registry_state_is_bound_to_the_chain_and_reconcile_records_and_restores_it(life):
    config, runs, client, _ = life
    # The champion moved in MLflow directly.
    client.set_registered_model_alias(NAME, "champion", "2")
    code, said = verifies()  # a bare name: before, this said OK
    assert code == 1 and "alias champion of trust-credit points at version 2" in said
    report = cli("audit", "report", "--model", NAME)
    assert report.returncode == 1 and "DOES NOT VERIFY" in report.stdout
    history = cli("history", "--model", NAME)
    assert history.returncode == 1 and "DISCREPANCY: alias champion" in history.stderr
    promoted = cli("promote", "--model", NAME, "--version", "1", "--reason", "back", "--approver", "bob")
    assert promoted.returncode == 1 and "nothing moved. `govtrain reconcile --model trust-credit`" in promoted.stderr
    # A gate tag and the card edited, on the version that was champion.
    gate = next(k for k in client.get_model_version(NAME, "1").tags if k.startswith("govtrain.gate."))
    honest = client.get_model_version(NAME, "1").tags[gate]
    client.set_model_version_tag(NAME, "1", gate, "pass (1.0 vs 0.5)")
    client.set_model_version_tag(NAME, "1", "govtrain.gate.fairness.extra", "pass")
    client.update_model_version(NAME, "1", description="# A card with the limitations removed\n")
    code, said = verifies(f"{NAME}/1")
    assert code == 1 and "(and 3 more)" in said
    fixed = cli("reconcile", "--model", NAME, "--reason", "alias and tags edited in MLflow", "--approver", "bob")
    assert fixed.returncode == 0, fixed.stderr
    assert f"recorded: tag {gate} of trust-credit/1 is 'pass (1.0 vs 0.5)' in the registry" in fixed.stdout
    assert "done: alias champion -> version 1" in fixed.stdout
    assert client.get_model_version_by_alias(NAME, "champion").version == "1"
    v1 = client.get_model_version(NAME, "1")
    assert v1.tags[gate] == honest and "govtrain.gate.fairness.extra" not in v1.tags
    assert "## Approval history" in v1.description and "first champion" in v1.description
    record = chain.read_chain(config.chain_dir, NAME)[-1]
    assert record["step"] == "reconcile" and len(record["details"]["problems"]) == 4
    assert verifies()[0] == 0 and cli("history", "--model", NAME).returncode == 0


def _promote_in_child(config_json, version, barrier, results):
    from govtrain.core.config import Config
    from govtrain.registry.lifecycle import Refused, promote

    config = Config.from_json(config_json)
    barrier.wait()
    try:
        move = promote(config, NAME, version, "bob", f"race to {version}")
        results.put(("moved", move.from_version, move.to_version))
    except Refused as exc:
        results.put(("refused", str(exc), None))


def test_two_promotions_racing_leave_one_linear_history(life):
    """The measured fork: two promotes at once both recorded "1 -> 3" and "1 -> 4" (2 of 5 tries). Here, 20
    tries of two processes behind a barrier, each promoting the version that is not champion."""
    config, runs, client, _ = life
    ctx = multiprocessing.get_context("fork")
    for _ in range(20):
        champion = client.get_model_version_by_alias(NAME, "champion").version
        other = "2" if champion == "1" else "1"
        barrier, results = ctx.Barrier(2), ctx.Queue()
        workers = [ctx.Process(target=_promote_in_child, args=(config.to_json(), other, barrier, results))
                   for _ in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(120)
        outcomes = sorted(results.get(timeout=5)[0] for _ in range(2))
        assert outcomes == ["moved", "refused"]
    moves = chain.alias_history(chain.read_chain(config.chain_dir, NAME), "champion")
    assert all(str(b["details"]["from_version"]) == str(a["details"]["to_version"])
               for a, b in zip(moves, moves[1:], strict=False))
    assert verifies()[0] == 0


def test_a_version_once_champion_deleted_in_mlflow_is_named_and_retired_by_reconcile(life):
    config, runs, client, _ = life
    champion = client.get_model_version_by_alias(NAME, "champion").version
    gone = "2" if champion == "1" else "1"
    client.delete_model_version(NAME, gone)
    code, said = verifies()
    assert code == 1 and f"version {gone} of trust-credit (registered in chain record" in said
    fixed = cli("reconcile", "--model", NAME, "--reason", "a version deleted in MLflow", "--approver", "bob")
    assert fixed.returncode == 0 and f"retired: version {gone}" in fixed.stdout
    assert verifies()[0] == 0


def test_planted_secrets_are_in_nothing_a_drift_run_writes(life, isolated_state, tmp_path, monkeypatch):
    """A webhook URL that is its own token (no scheme), the webhook's HMAC secret and an MLflow password in the
    environment; then every file under the state folder and the run's output is searched for each."""
    config, runs, client, data = life
    planted = {"GOVTRAIN_DRIFT_WEBHOOK": "hooks.example.com/services/T0/B0/pl4nted-T0KEN",
               "GOVTRAIN_DRIFT_WEBHOOK_SECRET": "pl4nted-HMAC", "MLFLOW_TRACKING_PASSWORD": "pl4nted-PASSW0RD"}
    for name, value in planted.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    out = cli("drift", "--model", f"{NAME}@champion", "--current", data.current, "--out", tmp_path / "drift")
    assert out.returncode == 0, out.stderr
    notice = chain.read_chain(config.chain_dir, NAME)[-1]
    assert notice["step"] == "notify" and notice["details"]["delivered"] is False
    assert notice["details"]["error"].endswith("(value not shown)")
    secrets = [v.encode() for v in planted.values()] + [b"pl4nted"]
    written = [p for root in (isolated_state, tmp_path / "drift") for p in root.rglob("*") if p.is_file()]
    assert len(written) > 50
    leaked = [str(p) for p in written for s in secrets if s in p.read_bytes()]
    assert leaked == [] and "pl4nted" not in out.stdout + out.stderr


def test_the_chain_of_runs_is_anchored_in_the_experiment_too(life, isolated_state, mlflow_server, tmp_path):
    """The anchor file rolled back to the record before and the newest run's record cut to match: the file agrees,
    the experiment's tag does not."""
    config_file = tmp_path / "runs.yaml"
    config_file.write_text(yaml.safe_dump({"dataset": {"path": "x.csv", "target": "y", "numeric": ["a"]},
                                           "registry": {"tracking_uri": mlflow_server}}))
    assert cli("audit", "runs", "--config", config_file).returncode == 0
    folder = chain.chain_path(isolated_state / "chains", ".runs") / "records"
    newest = sorted(folder.glob("*.json"))[-1]
    before = json.loads(sorted(folder.glob("*.json"))[-2].read_bytes())
    kept, anchor_file = newest.read_bytes(), chain.anchor_path(isolated_state / "chains", ".runs")
    kept_anchor = anchor_file.read_text()
    newest.unlink()
    anchor_file.write_text(chain.anchor_of(before))
    try:
        out = cli("audit", "runs", "--config", config_file)
        assert out.returncode == 1 and "but the registry (experiment govtrain, tag govtrain.runs_chain_head) " \
            "anchors record" in out.stderr and "records were removed from the end" in out.stderr
    finally:
        newest.write_bytes(kept)
        anchor_file.write_text(kept_anchor)
    assert cli("audit", "runs", "--config", config_file).returncode == 0
