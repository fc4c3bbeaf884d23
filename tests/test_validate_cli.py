"""govtrain validate (issue 18, item 2): one table against one suite with the pipeline's reader and engine;
exit 0 when no critical expectation failed, 1 when one did, 2 on an error, in one line."""
import json
import re

import pandas as pd
import pytest

from tests.test_cli import assert_one_line_error, govtrain


@pytest.fixture
def drafted(small_data, tmp_path):
    """The demo table as CSV and the suite `expectations init` drafts from it."""
    data = tmp_path / "credit.csv"
    pd.read_parquet(small_data.data).to_csv(data, index=False)
    made = govtrain("expectations", "init", "--data", data, "--suite", "credit", "--out", tmp_path / "suites")
    assert made.returncode == 0, made.stderr
    return data, tmp_path / "suites" / "credit.json"


@pytest.mark.slow
def test_a_drafted_suite_passes_its_table_and_a_planted_critical_failure_exits_1(drafted, tmp_path):
    data, suite = drafted
    passed = govtrain("validate", "--data", data, "--suite", suite, "--out", tmp_path / "ok")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "passed:" in passed.stdout and "0 failed (0 critical)" in passed.stdout
    results = json.loads((tmp_path / "ok" / "results.json").read_text())
    assert results["success"] is True and results["statistics"]["unsuccessful_expectations"] == 0
    page = (tmp_path / "ok" / "data_docs.html").read_text()
    assert "<html" in page[:500].lower()
    # self-contained: no stylesheet, script, image or font is loaded from the network (links to read are fine)
    assert re.findall(r'<(?:link|script|img)\b[^>]*(?:src|href)="https?://[^"]*"', page) == []
    assert "url(http" not in page and "url(../webfonts" not in page

    frame = pd.read_csv(data)
    frame.loc[5, "region"] = None  # one empty cell in a column complete in the profiled table: a warning at most
    frame["age"] = frame["age"].astype(object)
    frame.loc[7, "age"] = "forty"  # a number column now text: its type is critical
    frame.to_csv(tmp_path / "broken.csv", index=False)
    failed = govtrain("validate", "--data", tmp_path / "broken.csv", "--suite", suite, "--out", tmp_path / "bad")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "FAILED:" in failed.stdout and "(1 critical)" in failed.stdout
    summary = json.loads((tmp_path / "bad" / "summary.json").read_text())
    critical = [r for r in summary if not r["success"] and r["severity"] == "critical"]
    assert [(r["column"], r["expectation"], r["unexpected_count"]) for r in critical] == [
        ("age", "expect_column_values_to_be_in_type_list", len(frame))]
    region = next(r for r in summary if r["column"] == "region" and r["expectation"].endswith("not_be_null"))
    assert region["success"] and region["unexpected_count"] == 1 and region["severity"] == "warning"


@pytest.mark.slow  # four CLI processes
def test_validate_errors_are_one_line(small_data, tmp_path):
    """Each error is found before Great Expectations starts (a hand-written suite: no profiling here)."""
    data = tmp_path / "credit.csv"
    pd.read_parquet(small_data.data).head(50).to_csv(data, index=False)
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"name": "s", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "region"}}]}))
    assert_one_line_error(govtrain("validate", "--data", tmp_path / "nope.csv", "--suite", suite),
                          "nope.csv: data file not found")
    (tmp_path / "broken.json").write_text("{not json")
    assert_one_line_error(govtrain("validate", "--data", data, "--suite", tmp_path / "broken.json"),
                          "broken.json: not valid JSON")
    named = json.loads(suite.read_text())
    named["expectations"].append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "salary"}})
    (tmp_path / "named.json").write_text(json.dumps(named))
    assert_one_line_error(govtrain("validate", "--data", data, "--suite", tmp_path / "named.json"),
                          f"named.json: expectations[{len(named['expectations']) - 1}] "
                          "(expect_column_values_to_not_be_null) names column 'salary', which credit.csv does not have")
