"""A Data Docs page govtrain writes renders styled with no network (issue 18): Bootstrap's CSS, jQuery,
bootstrap-table and Font Awesome's icon font all come from the page itself. The same page as GE writes it,
with its CDN links, is the planted failure: offline, none of them load."""
from pathlib import Path

import pytest

from govtrain.data.native_suite import validate_frame
from tests.native_cases import expectations, table

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
PROBE = """return [getComputedStyle(document.body).fontFamily.includes('apple-system'),
                   typeof window.jQuery === 'function', typeof (window.jQuery || {fn: {}}).fn.bootstrapTable,
                   [...document.fonts].some(f => f.family.includes('Font Awesome') && f.status === 'loaded'),
                   document.querySelectorAll('table').length]"""


def rendered(browser, page: Path) -> list:
    browser.get(page.as_uri())
    browser.execute_async_script("const done = arguments[0]; Promise.all([...document.fonts].map(f => f.load()"
                                 ".catch(() => null))).then(() => done(true));")
    return browser.execute_script(PROBE)


def test_the_data_docs_page_renders_styled_offline_and_ges_own_page_does_not(browser, tmp_path):
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResultSchema
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    from govtrain.data.ge_engine import data_docs_html

    frame = table(0, 200)
    result = validate_frame(frame, {"name": "offline", "expectations": expectations(frame)})
    ours = tmp_path / "ours.html"
    ours.write_text(data_docs_html(result))
    theirs = tmp_path / "ge.html"
    theirs.write_text(DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(
        ExpectationSuiteValidationResultSchema().load(result))))

    styled, jquery, table_plugin, icons, tables = rendered(browser, ours)
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    browser.save_screenshot(str(ROOT / "test-artifacts" / "data_docs_offline.png"))
    assert (styled, jquery, table_plugin, icons) == (True, True, "function", True)
    assert tables > 5

    assert rendered(browser, theirs)[:4] == [False, False, "undefined", False]
