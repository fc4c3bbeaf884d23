"""Shared fixtures: small demo data, configs written as YAML, a real MLflow server on loopback."""
import json
import os
import shutil
import socket
from pathlib import Path

import pytest
import yaml

from govtrain.components.leakage import leakage, spill
from govtrain.core.config import load_config
from govtrain.pipelines import demo_data

ROOT = Path(__file__).resolve().parent.parent
SMALL_ROWS = 3000


@pytest.fixture(scope="session", autouse=True)
def isolated_state(tmp_path_factory):
    """Runs, logs and the embedded MLflow store go to a temp folder, never the user's .govtrain."""
    state = tmp_path_factory.mktemp("state")
    os.environ["GOVTRAIN_HOME"] = str(state)
    return state


@pytest.fixture(scope="session")
def small_data(tmp_path_factory):
    return demo_data.write_demo_data(tmp_path_factory.mktemp("demo"), SMALL_ROWS, seed=3)


def base_config(data_path: Path) -> dict:
    return {
        "dataset": {"path": str(data_path), "target": demo_data.TARGET, "numeric": demo_data.NUMERIC,
                    "categorical": demo_data.CATEGORICAL, "entity_id": demo_data.ENTITY,
                    "timestamp": demo_data.TIMESTAMP, "sensitive": demo_data.SENSITIVE},
        "split": {"strategy": "group", "seed": 0},
        "validation": {"suite": str(ROOT / "expectations" / "demo_credit.json")},
        "training": {"workers": 2, "epochs": 3, "batch_size": 256, "lr": 0.003},
        "gates": {"min_auc": 0.6, "max_ece": 0.1, "min_noise_auc_ratio": 0.8},
    }


@pytest.fixture
def write_config(tmp_path):
    """Write a config dict (deep-merged over the small-data base) to YAML and load it."""
    def _write(data_path: Path, **sections):
        raw = base_config(data_path)
        for section, values in sections.items():
            raw[section] = {**raw.get(section, {}), **values} if isinstance(values, dict) else values
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(raw))
        return load_config(path)
    return _write


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` process on a free 127.0.0.1 port (as `govtrain server` starts it), stopped
    when the session ends."""
    from govtrain.registry.server import EmbeddedServer

    with EmbeddedServer(tmp_path_factory.mktemp("mlflow"), free_port()) as server:
        server.wait_healthy(120)
        yield server.url


# The headless Chromium the browser tests drive (Debian's chromium and chromium-driver; make test-browser).
@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("chromium and chromedriver are not installed: run `make test-browser` (it installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,2200"):
        options.add_argument(flag)
    # no network: a page that still needs a CDN shows it
    options.add_argument("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def served(small_data, mlflow_server, isolated_state, tmp_path_factory):
    """One pipeline run that registers `served-credit` (test_serving.py and test_production_loop.py)."""
    folder = tmp_path_factory.mktemp("served")
    raw = base_config(small_data.data)
    from govtrain.pipelines.run import run_local

    raw["registry"] = {"tracking_uri": mlflow_server, "model_name": "served-credit"}
    (folder / "config.yaml").write_text(yaml.safe_dump(raw))
    run = run_local(load_config(folder / "config.yaml"), isolated_state, show_progress=False)
    assert run.registered
    return run, f"served-credit/{run.registration['version']}"


def assert_streamed_agrees(config, paths, tmp_path, name, held):
    """The streamed leakage path (stream_step.py, forced on, in hash partitions of 64 rows) reaches the held
    record's value and decision at every gate."""
    streamed_config = config.model_copy(deep=True)
    streamed_config.split.stream_from_rows = 30
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(spill, "PARTITION_ROWS", 64)
        record = leakage(streamed_config, paths, tmp_path / "ev-prepare", tmp_path / f"{name}-streamed", "t1")
    report = json.loads((tmp_path / f"{name}-streamed" / "files" / "leakage" / "leakage.json").read_text())
    assert report["streamed"]["hash_partitions"] > 1
    ours = {c["id"]: (c["value"], c["passed"]) for c in held["checks"]}
    theirs = {c["id"]: (c["value"], c["passed"]) for c in record["checks"]}
    assert theirs.keys() == ours.keys()
    differ = {k: (ours[k], theirs[k]) for k in ours if ours[k][1] != theirs[k][1] or ours[k][0] != pytest.approx(
        theirs[k][0], rel=1e-6, abs=1e-9)}
    assert not differ, differ
