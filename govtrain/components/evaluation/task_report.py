"""The evaluation report of a multiclass or regression model: evaluation.json, evaluation.md, and a figure
(the confusion matrix, or predicted against actual with the interval and the residuals)."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

from govtrain.components.evaluation import importance
from govtrain.components.evaluation.model_gate import reference_lines
from govtrain.components.evaluation.report import importance_png

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from govtrain.governance.evidence import StepEvidence  # noqa: E402


def confusion_png(matrix: list[list[int]], classes: list[str], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(1.5 + 0.5 * len(classes), 1.2 + 0.5 * len(classes)))
    ax.imshow(np.asarray(matrix), cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    for (i, j), count in np.ndenumerate(np.asarray(matrix)):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title("Confusion matrix, test split")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def residuals_png(y: np.ndarray, prediction: np.ndarray, half_width: np.ndarray, path: Path) -> None:
    """Actual against predicted with each row's interval (normalised conformal: its width follows the row)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4))
    low, high = float(min(y.min(), prediction.min())), float(max(y.max(), prediction.max()))
    left.scatter(prediction, y, s=6, alpha=0.5)
    left.plot([low, high], [low, high], color="grey", linestyle=":")
    left.vlines(prediction, prediction - half_width, prediction + half_width, color="tab:orange", alpha=0.15,
                label="conformal interval of each row")
    left.set_xlabel("predicted")
    left.set_ylabel("actual")
    left.legend(loc="upper left")
    right.scatter(prediction, y - prediction, s=6, alpha=0.5)
    right.axhline(0, color="grey", linestyle=":")
    right.set_xlabel("predicted")
    right.set_ylabel("residual (actual - predicted)")
    fig.suptitle("Regression on the test split")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def markdown(full: dict[str, Any]) -> str:
    task = full["task"]
    lines = ["# Evaluation report", "", f"Task: {task['kind']}" + (f", classes {', '.join(task['classes'])}"
                                                                   if task["classes"] else ""),
             f"Test rows: {full['rows']['test']}; samples: {full['samples']}", "",
             "## Checks", "", "| check | value | 95% interval | rows | threshold | result | RMF |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {c['id']} | {c['value']} | {c.get('interval', '')} | {c.get('rows', '')} | {c['threshold']} | "
              f"{'pass' if c['passed'] else 'FAIL'} | {', '.join(c['rmf'])} |" for c in full["checks"]]
    lines += ["", "## Performance (test)", ""]
    lines += [f"- {k}: {v:.4f} (95% CI {full['confidence_intervals'].get(k)})" for k, v in full["performance"].items()]
    base = full["baseline"]
    lines += [f"- baseline {base['model']} on the same split: {base['metric']} {base[base['metric']]:.4f} vs the "
              f"network's {base['network_' + base['metric']]:.4f} (gap {base['gap']:+.4f}; gates.max_gap_to_baseline)"]
    line = base["linear"]
    lines += [f"- linear model {line['model']}: {line['metric']} {line[line['metric']]:.4f} (gap {line['gap']:+.4f})"]
    lines += [*reference_lines(full["checks"], base), "", "## Calibration", ""]
    lines += [f"- {k}: {_fmt(v)}" for k, v in full["calibration"].items() if k != "reliability"]
    if "temperature" in full:
        lines.append(f"- temperature fitted on the validation split: {full['temperature']:.4f}")
    if "per_class" in full:
        lines += ["", "## Per class (test)", "", "| class | precision | recall | F1 | rows |", "|---|---|---|---|---|"]
        lines += [f"| {name} | {full['per_class'][name]['precision']:.4f} | {full['per_class'][name]['recall']:.4f} | "
                  f"{full['per_class'][name]['f1-score']:.4f} | {int(full['per_class'][name]['support'])} |"
                  for name in task["classes"]]
    lines += ["", "## Robustness", "", f"- headline metric kept at the gated noise severity: "
              f"{full['noise_metric_ratio']:.4f}"]
    lines += [f"- noise {r['severity']}: {_metrics(r)}" for r in full["robustness"]["noise"]]
    lines += [f"- missing {r['rate']}: {_metrics(r)}" for r in full["robustness"]["missing"]]
    lines += [f"- {a['name']} (eps {a['epsilon']}, {a['steps']} steps): {_metrics(a)}"
              for a in full["robustness"]["attacks"]]
    lines += ["", "## What the model leans on (MEASURE 2.9)", "", *importance.lines(full["importance"])]
    lines += ["", "## Error gaps between groups", ""]
    for column, result in full["fairness"].items():
        lines.append(f"- {column}: difference {result['error_difference']:.4f}, ratio {result['error_ratio']:.4f} "
                     f"({result['groups_judged']} groups judged)")
        lines += [f"  - {g}: {m['rows']} rows, mean error {m['mean_error']:.4f}{'' if m['gated'] else ' (too small)'}"
                  for g, m in result["groups"].items()]
    p = full["privacy"]
    lines += ["", "## Privacy", "", f"- membership inference AUC {p['mia_auc']:.4f} ({p['rows_each']} each)",
              "", "## Out-of-distribution", "", f"- {full['ood'] or 'not measured for regression'}",
              "", "## Inference cost", ""]
    lines += [f"- batch {k}: p99 {v['p99_ms']:.3f} ms, {v['rows_per_second']:.0f} rows/s"
              for k, v in full["latency"].items()]
    lines += ["", "## Champion", "", f"- {full['champion']}", "", "## Seconds per part", ""]
    lines += [f"- {k}: {v:.2f}" for k, v in full["timings"].items()]
    return "\n".join(lines) + "\n"


def _metrics(result: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in result.items() if k in ("accuracy", "macro_f1", "rmse", "r2", "mae"))


def write(evidence: StepEvidence, full: dict[str, Any], y: np.ndarray, out: np.ndarray,
          widths: np.ndarray | None = None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if full["task"]["kind"] == "multiclass":
            figure = "confusion_matrix.png"
            confusion_png(full["confusion_matrix"], full["task"]["classes"], folder / figure)
        else:
            figure = "residuals.png"
            assert widths is not None  # a regression's calibration gives every row its width
            residuals_png(y, out, widths, folder / figure)
        names = [figure]
        if full["importance"]["features"]:
            importance_png(full["importance"], folder / "importance.png")
            names.append("importance.png")
        (folder / "evaluation.md").write_text(markdown(full))
        for name in (*names, "evaluation.md"):
            evidence.add_file(name, folder / name)
    evidence.write_json("evaluation.json", full)
