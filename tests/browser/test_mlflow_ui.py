"""Review in the MLflow UI, in a real headless Chromium: the registered version's page shows the model
card, the gate tags and both aliases. Run with `make test-browser` (needs Debian's chromium and
chromium-driver; .ci/run installs them). Saves a screenshot to test-artifacts/."""
from pathlib import Path

import pytest

from govtrain.pipelines.run import run_local
from govtrain.registry.lifecycle import promote

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]


def test_reviewer_sees_card_gates_and_aliases(small_data, write_config, mlflow_server, isolated_state, browser,
                                              tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    config = write_config(small_data.data, registry={"tracking_uri": mlflow_server, "model_name": "ui-credit",
                                                     "intended_use": "Rank applications for a human reviewer."},
                          governance={"chain_dir": str(tmp_path / "chains")})
    run = run_local(config, isolated_state, show_progress=False)
    version = run.registration["version"]
    promote(config, "ui-credit", version, "reviewer", "card reviewed in the UI")

    browser.get(f"{mlflow_server}/#/models/ui-credit/versions/{version}")
    wanted = ["Intended use", "Rank applications for a human reviewer.", "govtrain.gate.evaluate.roc_auc",
              "champion", "challenger", "govtrain.ledger_root"]

    def page_shows_all(driver):
        text = driver.find_element(By.TAG_NAME, "body").text
        return all(w in text for w in wanted) and text

    try:
        text = WebDriverWait(browser, 60, poll_frequency=0.5).until(page_shows_all)
    finally:
        out = ROOT / "test-artifacts"
        out.mkdir(exist_ok=True)
        browser.save_screenshot(str(out / "mlflow_model_version.png"))
    assert "by reviewer: card reviewed in the UI" in text
