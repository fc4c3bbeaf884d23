"""A regression interval that follows the row: normalised split-conformal (Lei et al., 2018, section 5.2).

A scale model sigma(x) says how large the error tends to be for a row: a ridge regression of log |residual|
on the network's own inputs (standardised numerics and their squares, one indicator per category), fitted
on train rows,
which the conformal step does not use. The conformal quantile q is then taken over |residual| / sigma(x)
on val, and a row's interval is prediction +/- q x sigma(x). Coverage at the level holds whatever sigma is
(exchangeability of val and test rows is all it needs); a sigma that tracks the error makes cheap rows'
intervals narrow and dear rows' wide, instead of one width for all (+/-714 on a price table, so the cheapest
rows had negative lower bounds).

Everything is numbers in model.json: no pickle, and the served model computes sigma with numpy.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

RIDGE = 1.0
CLIP = (0.0, 1.0)  # sigma kept within the range it takes on train rows: no extrapolation past what was fitted


@dataclass
class IntervalScale:
    intercept: float
    numeric: list[float]  # per numeric feature, on its standardised value, then on its square (errors that grow
    # at both ends of a feature: a line alone cannot)
    categorical: list[list[float]]  # per categorical feature: one per code (0: unknown or missing)
    low: float
    high: float
    score_quantiles: list[float]  # |residual| / sigma on val at 0, 1, ..., 100 percent: the expected error
    # Spearman correlation of sigma with |residual| on the half of the train rows it was not fitted on; below
    # MIN_SPEARMAN (or not significant) sigma is one number and the interval one width, as before
    spearman: float = 0.0
    follows_row: bool = False

    def sigma(self, x_num: np.ndarray, x_cat: np.ndarray) -> np.ndarray:
        z = np.full(len(x_num), self.intercept)
        if self.numeric:
            x = np.asarray(x_num, float)
            z = z + np.hstack([x, x * x]) @ np.asarray(self.numeric)
        for j, weights in enumerate(self.categorical):
            codes = np.clip(np.asarray(x_cat)[:, j], 0, len(weights) - 1)
            z = z + np.asarray(weights)[codes]
        return np.clip(np.exp(z), self.low, self.high)

    def to_json(self) -> dict:
        return asdict(self)


def design(x_num: np.ndarray, x_cat: np.ndarray, cardinalities: list[int]) -> np.ndarray:
    x = np.asarray(x_num, float)
    blocks = [x, x * x]
    for j, size in enumerate(cardinalities):
        onehot = np.zeros((len(x_cat), size))
        onehot[np.arange(len(x_cat)), np.clip(np.asarray(x_cat)[:, j], 0, size - 1)] = 1.0
        blocks.append(onehot)
    return np.hstack(blocks)


MIN_SPEARMAN = 0.1


def fit_scale(x_num: np.ndarray, x_cat: np.ndarray, cardinalities: list[int], residual: np.ndarray,
              seed: int = 0) -> IntervalScale:
    """Fitted on half of the rows and checked on the other half: a scale that does not track the error there
    (a group the model errs on that is not among its inputs) would only add noise to the widths, so the
    interval then keeps one width. Refitted on every row when it does."""
    from scipy.stats import spearmanr

    r = np.abs(np.asarray(residual, float))
    half = np.random.default_rng(seed).random(len(r)) < 0.5
    trial = _fit(np.asarray(x_num)[half], np.asarray(x_cat)[half], cardinalities, r[half])
    rho, p = spearmanr(trial.sigma(np.asarray(x_num)[~half], np.asarray(x_cat)[~half]), r[~half]) \
        if half.sum() > 10 and (~half).sum() > 10 else (0.0, 1.0)
    rho = 0.0 if not np.isfinite(rho) else float(rho)
    if rho >= MIN_SPEARMAN and p < 0.01:
        scale = _fit(x_num, x_cat, cardinalities, r)
        scale.spearman, scale.follows_row = rho, True
        return scale
    one = float(np.median(r)) or 1.0
    return IntervalScale(float(np.log(one)), [0.0] * 2 * np.asarray(x_num).shape[1],
                         [[0.0] * size for size in cardinalities], one, one, [], rho, False)


def _fit(x_num: np.ndarray, x_cat: np.ndarray, cardinalities: list[int], abs_residual: np.ndarray
         ) -> IntervalScale:
    """Ridge of log(|residual| + a floor) on the inputs; the floor (a thousandth of the median) keeps exact fits from
    dominating the log."""
    r = np.asarray(abs_residual, float)
    floor = max(float(np.median(r)) * 1e-3, 1e-12)
    target = np.log(r + floor)
    x = design(x_num, x_cat, cardinalities)
    mean_x, mean_t = x.mean(axis=0), float(target.mean())
    xc = x - mean_x
    weights = np.linalg.solve(xc.T @ xc + RIDGE * np.eye(x.shape[1]), xc.T @ (target - mean_t)) if x.shape[1] else \
        np.zeros(0)
    intercept = mean_t - float(mean_x @ weights) if x.shape[1] else mean_t
    split = np.cumsum([2 * np.asarray(x_num).shape[1], *cardinalities])[:-1]
    parts = np.split(weights, split) if x.shape[1] else [np.zeros(0)]
    fitted = np.exp(intercept + x @ weights)
    low, high = (float(np.quantile(fitted, q)) for q in CLIP)
    return IntervalScale(float(intercept), parts[0].tolist(), [p.tolist() for p in parts[1:]], low, max(high, low),
                         [])


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """Split-conformal (Vovk; Lei et al., 2018): the ceil((n+1) level)-th smallest score of held-out rows gives
    intervals covering a new row with probability at least `level`."""
    n = len(scores)
    rank = min(int(np.ceil((n + 1) * level)), n)
    return float(np.sort(scores)[rank - 1])


def conformal(scale: IntervalScale, x_num: np.ndarray, x_cat: np.ndarray, residual: np.ndarray, level: float
              ) -> float:
    """q over |residual| / sigma on the calibration rows; stores the scores' percentiles (the expected error)."""
    scores = np.abs(np.asarray(residual, float)) / scale.sigma(x_num, x_cat)
    scale.score_quantiles = np.quantile(scores, np.linspace(0, 1, 101)).tolist()
    return conformal_quantile(scores, level)
