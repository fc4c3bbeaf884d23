"""Issue 32: the end-of-run summary read whole at 80 columns, non-interactive (CI, `make run | tee`): no number
elided, thresholds with their direction, gated apart from reported, and the next commands with this run's
values."""
from __future__ import annotations

import io
import re
from pathlib import Path

from rich.console import Console

from govtrain.pipelines.run import LocalRun
from govtrain.pipelines.summary import number, print_summary

CHECKS = [{"id": "leakage.label_errors", "value": 0.013452, "threshold": 0.02, "passed": True, "gated": False},
          {"id": "leakage.exact_duplicates.train_test", "value": 0.0, "threshold": 0.02, "passed": True}]
MODEL_CHECKS = [{"id": "evaluate.roc_auc", "value": 0.751857, "threshold": 0.7, "passed": True},
                {"id": "evaluate.fairness.gender.demographic_parity_difference", "value": 0.013029, "threshold": 0.25,
                 "passed": True},
                {"id": "evaluate.mia_auc", "value": 0.465153, "threshold": 0.648809, "passed": True}]


def a_run(tmp_path: Path, registered: bool) -> LocalRun:
    records = [{"step": "data_gate", "decision": "pass", "checks": CHECKS, "started": "2026-12-06T10:00:00+00:00",
                "finished": "2026-12-06T10:00:01+00:00", "details": {}, "metrics": {}, "rmf": []},
               {"step": "evaluate", "decision": "pass", "checks": MODEL_CHECKS, "details": {}, "rmf": [],
                "metrics": {"test_rows": 2986}, "started": "2026-12-06T10:00:01+00:00",
                "finished": "2026-12-06T10:00:09+00:00"}]
    ledger = {"records": records, "outcome": "registered" if registered else "failed gate: evaluate",
              "root": "f" * 64, "run_id": "local-1", "sealed": "2026-12-06T10:00:10+00:00"}
    registration = {"model_name": "credit", "version": "3", "alias": "challenger", "mlflow_run_id": "abc",
                    "ledger_root": "f" * 64, "tracking_uri": "sqlite:///x", "seconds": 1.0} if registered else None
    return LocalRun("local-1", tmp_path / "runs" / "local-1", tmp_path / "log", ledger, registration, 12.0)


def transcript(run: LocalRun) -> str:
    out = io.StringIO()
    print_summary(run, Console(file=out, width=80, force_terminal=False, soft_wrap=True))
    return out.getvalue()


def test_at_80_columns_no_number_is_elided_and_the_next_commands_are_filled_in(tmp_path):
    text = transcript(a_run(tmp_path, registered=True))
    table = [line for line in text.splitlines() if line.startswith("│")]
    assert table and all(len(line) <= 80 for line in table)
    assert "…" not in "".join(table)
    for check in [*CHECKS, *MODEL_CHECKS]:
        assert re.search(rf"│ {re.escape(number(check['value']))} +│", text), check["id"]
    assert "≥ 0.7" in text and "≤ 0.25" in text and "≤ 0.6488" in text
    label_errors = next(line for line in table if "leakage.label_errors" in line)
    assert "reported" in label_errors and "gated" not in label_errors
    assert "govtrain promote --model credit/3 --reason" in text
    assert "govtrain audit report --model credit/3" in text
    assert "govtrain drift --model credit@champion --current" in text
    assert "separation of duties" in text
    assert all(len(line) <= 80 for line in text.splitlines() if not line.startswith(("evidence", "verify", "pipeline")))


def test_a_refused_run_says_what_stopped_it(tmp_path):
    text = transcript(a_run(tmp_path, registered=False))
    assert "registered nothing" in text and f"govtrain audit verify {tmp_path / 'runs' / 'local-1'}" in text
    assert "govtrain promote" not in text


def test_numbers_keep_four_decimals_at_most():
    assert [number(v) for v in (0.751857, 0.0, 3, 0.02, 1234567.0)] == ["0.7519", "0", "3", "0.02", "1.235e+06"]


def test_progress_lines_say_each_step_each_epoch_with_time_left_and_each_evaluation_part():
    from govtrain.pipelines.run import Progress

    out = io.StringIO()
    progress = Progress(out)
    for line in ["Executing task 'prepare-op'", "Task 'prepare-op' finished with status SUCCESS",
                 "\x1b[32mExecuting task 'train-op'\x1b[0m", "    epoch 1/6 loss 0.5603 val_auc 0.7093 80585 samples/s",
                 "    epoch 2/6 loss 0.5003 val_auc 0.7193 80585 samples/s",
                 "    epoch 6/6 loss 0.4603 val_auc 0.7493 80585 samples/s", "evaluate: robustness done in 5.3 s",
                 "something else"]:
        progress.read(line)
    lines = [line[12:] for line in out.getvalue().splitlines()]  # after "  HH:MM:SS  "
    assert lines == ["prepare-op     started", "prepare-op     success", "train-op       started",
                     "  train epoch 1/6: loss 0.5603, val_auc 0.7093",
                     "  train epoch 2/6: loss 0.5003, val_auc 0.7193, about 0 s left",
                     "  train epoch 6/6: loss 0.4603, val_auc 0.7493", "  evaluate robustness (5.3 s)"]
    assert "\x1b" not in out.getvalue()
