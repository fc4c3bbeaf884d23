"""A loss-threshold membership-inference attack (Yeom et al.): training rows tend to have lower loss."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve


def per_row_loss(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    p = np.clip(np.where(y == 1, proba, 1 - proba), 1e-7, 1.0)
    return -np.log(p)


def membership_inference(member_loss: np.ndarray, nonmember_loss: np.ndarray) -> dict:
    labels = np.r_[np.ones(len(member_loss)), np.zeros(len(nonmember_loss))]
    score = -np.r_[member_loss, nonmember_loss]  # lower loss -> "member"
    fpr, tpr, _ = roc_curve(labels, score)
    return {"mia_auc": float(roc_auc_score(labels, score)),
            "mia_tpr_at_1pct_fpr": float(np.interp(0.01, fpr, tpr)),
            "train_test_loss_gap": float(nonmember_loss.mean() - member_loss.mean()),
            "rows_each": int(len(member_loss))}
