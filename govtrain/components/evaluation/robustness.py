"""Robustness: Gaussian noise, missing values, category swaps, and FGSM / PGD attacks in the
standardised numeric space, all seeded."""
from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from govtrain.components.evaluation.task_metrics import performance


def _outputs(model, x_num, x_cat) -> np.ndarray:
    """What the task's metrics read: binary, the positive class's probability; else outputs_from_tensors."""
    if model.task.kind == "binary":
        return model.proba_from_tensors(x_num, x_cat)
    return model.outputs_from_tensors(x_num, x_cat)


def _scores(model, x_num, x_cat, y) -> dict[str, float]:
    """The task's metrics on perturbed inputs (binary: ROC AUC and accuracy)."""
    if model.task.kind != "binary":
        return performance(model.task.kind, y, _outputs(model, x_num, x_cat))
    proba = _outputs(model, x_num, x_cat)
    return {"roc_auc": float(roc_auc_score(y, proba)), "accuracy": float(np.mean((proba >= 0.5) == y))}


def noise(model, x_num, x_cat, y, severities: list[float], seed: int) -> list[dict]:
    """N(0, s) on the standardised numerics = s x each feature's std in raw units."""
    g = torch.Generator().manual_seed(seed)
    return [{"severity": s, **_scores(model, x_num + torch.randn(x_num.shape, generator=g) * s, x_cat, y)}
            for s in severities]


def noisy_outputs(model, x_num, x_cat, severity: float, seed: int, draws: int) -> list[np.ndarray]:
    """The network's outputs (_outputs) under `draws` seeded draws of the noise above (seeds seed, seed + 1, ...)."""
    return [_outputs(model, x_num + torch.randn(x_num.shape, generator=torch.Generator().manual_seed(seed + draw))
                     * severity, x_cat) for draw in range(draws)]


def missingness(model, x_num, x_cat, y, rates: list[float], seed: int) -> list[dict]:
    """A share of cells set missing: numerics to the train mean (0 standardised), categories to unknown."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for rate in rates:
        num = torch.where(torch.rand(x_num.shape, generator=g) < rate, torch.zeros_like(x_num), x_num)
        cat = torch.where(torch.rand(x_cat.shape, generator=g) < rate, torch.zeros_like(x_cat), x_cat)
        out.append({"rate": rate, **_scores(model, num, cat, y)})
    return out


def category_swaps(model, x_num, x_cat, y, rate: float, cardinalities: list[int], seed: int) -> dict:
    """A share of category cells replaced by another category seen in training."""
    g = torch.Generator().manual_seed(seed)
    cat = x_cat.clone()
    for j, card in enumerate(cardinalities):
        swap = torch.rand(len(cat), generator=g) < rate
        if card < 2:  # every value of the column is pooled as unknown (features.py): there is none to swap to
            continue
        cat[swap, j] = torch.randint(1, card, (int(swap.sum()),), generator=g)
    return {"rate": rate, **_scores(model, x_num, cat, y)}


def attack(model, x_num, x_cat, y, epsilon: float, steps: int, seed: int) -> dict:
    """L-inf attack on the standardised numerics, raising the task's loss: FGSM when steps == 1, PGD (random
    start) otherwise."""
    torch.manual_seed(seed)
    net = model.model
    task = model.task
    target = (torch.as_tensor((y - task.mean) / task.std, dtype=torch.float32) if task.kind == "regression"
              else torch.as_tensor(y, dtype=torch.long))
    delta = torch.zeros_like(x_num) if steps == 1 else (torch.rand_like(x_num) * 2 - 1) * epsilon
    step_size = epsilon if steps == 1 else 2.5 * epsilon / steps
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = task.loss(net(x_num + delta, x_cat) / model.temperature, target)  # the loss the attack raises
        (grad,) = torch.autograd.grad(loss, delta)
        delta = (delta.detach() + step_size * grad.sign()).clamp(-epsilon, epsilon)
    return {"epsilon": epsilon, "steps": steps, **_scores(model, x_num + delta, x_cat, y)}
