"""The evaluation report's figures and Markdown."""
from __future__ import annotations

from pathlib import Path

import matplotlib

from govtrain.components.evaluation.model_gate import reference_lines

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def reliability_png(before: list[dict], after: list[dict], temperature: float, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    for table, label in ((before, "before (T=1)"), (after, f"after temperature scaling (T={temperature:.2f})")):
        ax.plot([b["mean_predicted"] for b in table], [b["observed_rate"] for b in table], marker="o", label=label)
    ax.set_xlabel("mean predicted probability (bin)")
    ax.set_ylabel("observed positive rate")
    ax.set_title("Reliability diagram, test split, 15 bins")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def robustness_png(noise: list[dict], missing: list[dict], clean_auc: float, path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
    left.plot([r["severity"] for r in noise], [r["roc_auc"] for r in noise], marker="o")
    left.set_xlabel("Gaussian noise (x feature std)")
    left.set_ylabel("ROC AUC")
    right.plot([r["rate"] for r in missing], [r["roc_auc"] for r in missing], marker="o", color="tab:orange")
    right.set_xlabel("share of cells missing")
    for ax in (left, right):
        ax.axhline(clean_auc, color="grey", linestyle=":", label="clean")
        ax.legend()
    fig.suptitle("Robustness curves, test split")
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
    lines += ["- figure: robustness.png", "", "## Fairness", ""]
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
