"""evaluate: held-out metrics, calibration and noise robustness of the trained model; the model gate.

- accuracy, ROC AUC, log loss, Brier score on the test split;
- ECE with 15 equal-width bins on the positive-class probability;
- ROC AUC with Gaussian noise (gates.noise_severity x each feature's std) added to the numerics,
  reported as the share of the clean AUC that survives.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import accuracy_score, brier_score_loss, log_loss, roc_auc_score

from components.train.model import LoadedModel
from governance.evidence import StepEvidence
from governance.rmf import NOT_MEASURED_BY_EVALUATE
from pipelines.config import Config

ECE_BINS = 15


def expected_calibration_error(y: np.ndarray, proba: np.ndarray, bins: int = ECE_BINS) -> tuple[float, list[dict]]:
    """Weighted mean |observed rate - mean predicted| over equal-width probability bins."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(proba, edges[1:-1], right=True), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        if not mask.any():
            continue
        gap = abs(float(y[mask].mean()) - float(proba[mask].mean()))
        ece += mask.mean() * gap
        table.append({"bin": b, "low": float(edges[b]), "high": float(edges[b + 1]), "count": int(mask.sum()),
                      "mean_predicted": float(proba[mask].mean()), "observed_rate": float(y[mask].mean())})
    return float(ece), table


def classification_metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": float(accuracy_score(y, proba >= 0.5)),
        "roc_auc": float(roc_auc_score(y, proba)),
        "log_loss": float(log_loss(y, np.clip(proba, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "brier": float(brier_score_loss(y, proba)),
    }


def noisy_auc(model: LoadedModel, x_num: torch.Tensor, x_cat: torch.Tensor, y: np.ndarray, severity: float,
              seed: int) -> float:
    """AUC with N(0, severity) added to the standardised numerics, i.e. severity x std in raw units."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(x_num.shape, generator=generator) * severity
    return float(roc_auc_score(y, model.proba_from_tensors(x_num + noise, x_cat)))


def evaluate(config: Config, model_dir: Path, test_path: Path, parent_evidence: Path, evidence_dir: Path,
             run_id: str) -> dict:
    gates = config.gates
    evidence = StepEvidence("evaluate", evidence_dir, run_id=run_id, config_digest=config.digest(),
                            parents=[parent_evidence])
    test = pd.read_parquet(test_path)
    evidence.add_input("data/test.parquet", test_path, rows=len(test))
    model = LoadedModel(model_dir)
    y = test[config.dataset.target].to_numpy().astype(int)
    x_num, x_cat = model.features.tensors(test)
    proba = model.proba_from_tensors(x_num, x_cat)

    metrics = classification_metrics(y, proba)
    metrics["ece"], reliability = expected_calibration_error(y, proba)
    metrics["noise_auc"] = noisy_auc(model, x_num, x_cat, y, gates.noise_severity, config.split.seed)
    metrics["noise_auc_ratio"] = metrics["noise_auc"] / metrics["roc_auc"]
    metrics["test_rows"] = len(test)
    evidence.metrics = {k: round(v, 6) if isinstance(v, float) else v for k, v in metrics.items()}

    evidence.check("evaluate.roc_auc", round(metrics["roc_auc"], 6), gates.min_auc, metrics["roc_auc"] >= gates.min_auc)
    evidence.check("evaluate.ece", round(metrics["ece"], 6), gates.max_ece, metrics["ece"] <= gates.max_ece)
    evidence.check("evaluate.noise_auc_ratio", round(metrics["noise_auc_ratio"], 6), gates.min_noise_auc_ratio,
                   metrics["noise_auc_ratio"] >= gates.min_noise_auc_ratio)
    evidence.write_json("evaluation.json", {"metrics": metrics, "reliability": reliability,
                                            "noise_severity": gates.noise_severity, "ece_bins": ECE_BINS})
    return evidence.finish(not_measured=NOT_MEASURED_BY_EVALUATE)
