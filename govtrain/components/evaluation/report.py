"""The evaluation report's figures and Markdown."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from scipy.stats import ks_2samp
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from govtrain.components.evaluation import importance
from govtrain.components.evaluation.model_gate import reference_lines

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def reliability_png(before: list[dict], after: list[dict], temperature: float, path: Path) -> None:
    """With the rows in each bin: a point resting on a handful of rows says little."""
    fig, (ax, counts) = plt.subplots(2, 1, figsize=(5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    for table, label in ((before, "before (T=1)"), (after, f"after temperature scaling (T={temperature:.2f})")):
        ax.plot([b["mean_predicted"] for b in table], [b["observed_rate"] for b in table], marker="o", label=label)
    for b in after:
        ax.annotate(str(b["count"]), (b["mean_predicted"], b["observed_rate"]), textcoords="offset points",
                    xytext=(0, 6), ha="center", fontsize=7)
    ax.set_ylabel("observed positive rate")
    ax.set_title("Reliability, test split, 15 bins (rows per bin)")
    ax.legend(loc="upper left")
    counts.bar([(b["low"] + b["high"]) / 2 for b in after], [b["count"] for b in after],
               width=[b["high"] - b["low"] for b in after], color="tab:orange", edgecolor="white")
    counts.set_yscale("log")
    counts.set_ylabel("rows (log)")
    counts.set_xlabel("predicted probability")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def robustness_png(noise: list[dict], missing: list[dict], clean_auc: float, path: Path,
                   gate_ratio: float | None = None, gated_severity: float | None = None) -> None:
    """On the full 0.5-1 axis of ROC AUC (a cut axis makes a small loss look like a cliff), with the gate line."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
    left.plot([r["severity"] for r in noise], [r["roc_auc"] for r in noise], marker="o")
    left.set_xlabel("Gaussian noise (x feature std)")
    left.set_ylabel("ROC AUC")
    right.plot([r["rate"] for r in missing], [r["roc_auc"] for r in missing], marker="o", color="tab:orange")
    right.set_xlabel("share of cells missing")
    for ax in (left, right):
        ax.axhline(clean_auc, color="grey", linestyle=":", label="clean")
        ax.axhline(0.5, color="black", linewidth=0.8, label="chance")
        ax.set_ylim(0.45, 1.0)
    if gate_ratio is not None:
        left.axhline(gate_ratio * clean_auc, color="tab:red", linestyle="--",
                     label=f"gate: {gate_ratio:.3f} x clean at severity {gated_severity}")
        if gated_severity is not None:
            left.axvline(gated_severity, color="tab:red", linewidth=0.6, linestyle=":")
    for ax in (left, right):
        ax.legend(fontsize=8, loc="lower left")
    fig.suptitle("Robustness curves, test split")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def roc_pr_png(y: np.ndarray, proba: np.ndarray, path: Path) -> None:
    """ROC and precision-recall curves of the test split, with the chance line and the base rate."""
    fpr, tpr, _ = roc_curve(y, proba)
    precision, recall, _ = precision_recall_curve(y, proba)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4))
    left.plot(fpr, tpr, label=f"network (ROC AUC {roc_auc_score(y, proba):.3f})")
    left.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    left.set_xlabel("false positive rate")
    left.set_ylabel("true positive rate")
    left.set_title("ROC curve, test split")
    left.legend(loc="lower right")
    right.plot(recall, precision, label=f"network (average precision {average_precision_score(y, proba):.3f})")
    right.axhline(float(np.mean(y)), color="grey", linestyle=":", label=f"base rate {np.mean(y):.3f}")
    right.set_xlabel("recall")
    right.set_ylabel("precision")
    right.set_ylim(0, 1.02)
    right.set_title("Precision-recall curve, test split")
    right.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def score_distributions_png(y: np.ndarray, proba: np.ndarray, path: Path) -> float:
    """The score's distribution in each class, and the KS statistic between them (credit's first look)."""
    ks = float(ks_2samp(proba[y == 1], proba[y == 0]).statistic) if (y == 1).any() and (y == 0).any() else 0.0
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, 1, 41).tolist()
    for label, colour in ((0, "tab:blue"), (1, "tab:orange")):
        ax.hist(proba[y == label], bins=bins, density=True, alpha=0.5, color=colour,
                label=f"class {label} ({int((y == label).sum())} rows)")
    ax.set_xlabel("predicted probability of the positive class")
    ax.set_ylabel("density")
    ax.set_title(f"Score distribution by class, test split (KS {ks:.3f})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return ks


def importance_png(found: dict, path: Path, top: int = 15) -> None:
    """Permutation importance with its 95% intervals, largest first."""
    rows = found["features"][:top][::-1]
    fig, ax = plt.subplots(figsize=(6, 1 + 0.35 * max(len(rows), 1)))
    means = [r["drop"] for r in rows]
    errors = [[r["drop"] - r["interval"][0] for r in rows], [r["interval"][1] - r["drop"] for r in rows]]
    ax.barh([r["feature"] for r in rows], means, xerr=errors, color="tab:blue", capsize=3)
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_xlabel(f"drop in {found['metric']} when shuffled ({found['rows']} test rows, {found['repeats']} repeats)")
    ax.set_title("Permutation importance, test split")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown(report: dict) -> str:
    lines = ["# Evaluation report", "", f"Test rows: {report['rows']['test']}; samples: {report['samples']}", "",
             "## Checks", "", "| check | value | 95% CI | threshold | result | RMF |", "|---|---|---|---|---|---|"]
    for c in report["checks"]:
        ci = report["confidence_intervals"].get(c["id"].split(".")[-1])
        lines.append(f"| {c['id']} | {c['value']} | {ci or ''} | {c['threshold']} | "
                     f"{'pass' if c['passed'] else 'FAIL'} | {', '.join(c['rmf'])} |")
    lines += ["", "## Performance (test)", ""]
    lines += [f"- {k}: {v:.4f} (95% CI {report['confidence_intervals'].get(k)})" for k,
              v in report["performance"].items()]
    base = report["baseline"]
    lines += [f"- baseline {base['model']} on the same split: ROC AUC {base['roc_auc']:.4f} vs the network's "
              f"{base['network_roc_auc']:.4f} (gap {base['gap']:+.4f}; gates.max_gap_to_baseline)"]
    line = base["linear"]
    lines.append(f"- linear model {line['model']}: ROC AUC {line['roc_auc']:.4f} (gap {line['gap']:+.4f})")
    lines += reference_lines(report["checks"], base)
    cal, before = report["calibration"], report["calibration_before"]
    lines += ["", "## Calibration", "", f"- temperature fitted on the validation split: {report['temperature']:.4f}",
              f"- ECE {before['ece']:.4f} -> {cal['ece']:.4f}; adaptive ECE {before['adaptive_ece']:.4f} -> "
              f"{cal['adaptive_ece']:.4f}; MCE {before['mce']:.4f} -> {cal['mce']:.4f}; Brier {cal['brier']:.4f}; "
              f"NLL {before['nll']:.4f} -> {cal['nll']:.4f}",
              f"- gated: ECE beyond sampling noise {cal['ece_excess']:.4f} (a calibrated model's ECE on these "
              f"{cal['rows']} rows: mean {cal['ece_noise_mean']:.4f}, 95th percentile {cal['ece_noise_q95']:.4f})",
              "- figure: reliability.png"]
    rob = report["robustness"]
    lines += ["", "## Robustness", ""]
    lines += [f"- noise {r['severity']}: AUC {r['roc_auc']:.4f}, accuracy {r['accuracy']:.4f}" for r in rob["noise"]]
    lines += [f"- missing {r['rate']}: AUC {r['roc_auc']:.4f}" for r in rob["missing"]]
    lines += [f"- category swaps {rob['swaps']['rate']}: AUC {rob['swaps']['roc_auc']:.4f}"]
    lines += [f"- {a['name']} (eps {a['epsilon']}, {a['steps']} steps, {report['samples']['attack_rows']} rows): "
              f"AUC {a['roc_auc']:.4f}, accuracy {a['accuracy']:.4f}" for a in rob["attacks"]]
    lines += ["- figure: robustness.png", "", "## Discrimination", "",
              f"- KS statistic between the classes' score distributions: {report['ks']:.4f}",
              "- figures: roc_pr.png, score_distributions.png", "", "## What the model leans on (MEASURE 2.9)", ""]
    lines += importance.lines(report["importance"]) + ["", "## Fairness", ""]
    for column, result in report["fairness"].items():
        lines.append(f"- {column}: demographic parity difference {result['demographic_parity_difference']:.4f}, "
                     f"equalized odds difference {result['equalized_odds_difference']:.4f} "
                     f"({result['groups_judged']} groups judged)")
        lines += [f"  - {g}: {m['rows']} rows, positive rate {m['positive_rate']:.3f}, AUC {m['roc_auc']}"
                  f"{'' if m['gated'] else ' (too small to gate)'}" for g, m in result["groups"].items()]
    p = report["privacy"]
    lines += ["", "## Privacy", "", f"- membership inference AUC {p['mia_auc']:.4f}, TPR at 1% FPR "
              f"{p['mia_tpr_at_1pct_fpr']:.4f}, train/test loss gap {p['train_test_loss_gap']:.4f} "
              f"({p['rows_each']} members and non-members)",
              "", "## Out-of-distribution", "", f"- AUROC of (1 - max probability) separating test from the shifted "
              f"batch ({report['ood']['source']}): {report['ood']['auroc']:.4f}",
              "", "## Inference cost", ""]
    lines += [f"- batch {k}: p50 {v['p50_ms']:.3f} ms, p99 {v['p99_ms']:.3f} ms, {v['rows_per_second']:.0f} rows/s"
              for k, v in report["latency"].items()]
    lines += ["", "## Champion", "", f"- {report['champion']}"]
    lines += ["", "## Seconds per part", ""] + [f"- {k}: {v:.2f}" for k, v in report["timings"].items()]
    return "\n".join(lines) + "\n"
