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

    # Issue 29, a reviewer's test: the version page opens with the verdict, shows the gates table and renders
    # the ROC figure (served by MLflow from the run's evidence), and so does the audit report's HTML.
    assert "gated checks on the data and the model passed" in text
    assert "evaluate.roc_auc" in text and "must be" in text
    roc = browser.find_element(By.CSS_SELECTOR, "img[src*='evidence/files/evaluate/roc_pr.png']")  # MLflow drops alt
    WebDriverWait(browser, 30, poll_frequency=0.5).until(
        lambda driver: driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", roc))
    assert browser.execute_script("return arguments[0].naturalWidth", roc) == 900  # the 9x4 inch figure at 100 dpi

    from govtrain.registry.audit import report

    audit, _, html = report(config, f"ui-credit/{version}", tmp_path / "report")
    assert audit.ok, audit.problem
    browser.get(html.as_uri())
    verdict = browser.find_element(By.ID, "verdict").text
    assert verdict.startswith(f"Registered as ui-credit version {version}") and "the ledger verifies" in verdict
    gates = browser.find_element(By.ID, "gates").text
    assert "evaluate.roc_auc" in gates and "≥ 0.6" in gates
    figure = browser.find_element(By.CSS_SELECTOR, "img[alt='roc_pr.png']")
    assert browser.execute_script("return arguments[0].naturalWidth", figure) == 900
    browser.save_screenshot(str(ROOT / "test-artifacts" / "audit_report.png"))
