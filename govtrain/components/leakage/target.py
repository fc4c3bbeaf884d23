"""Checks that need the label's relation to the features, on a seeded sample of train rows:
one feature that alone predicts the label (target leakage), and rows whose label a simple
cross-validated model contradicts with high confidence (suspected label errors)."""
from __future__ import annotations

from itertools import combinations

import numpy as np
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from threadpoolctl import threadpool_limits

from govtrain.components.leakage.duplicates import MAX_EXAMPLES
from govtrain.components.leakage.encode import EncodedSplits

POOLED = -2  # the code of the categories too rare to judge on their own


def sample_rows(rows: int, size: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(rows, size=min(rows, size), replace=False))


def pooled(codes: np.ndarray, min_rows: int) -> np.ndarray:
    """Categories with fewer than min_rows rows become one: an id-like column cannot look predictive."""
    _, inverse, counts = np.unique(codes, return_inverse=True, return_counts=True)
    return np.where(counts[inverse] >= min_rows, codes, POOLED)


def single_feature_auc(data: EncodedSplits, rows: np.ndarray, label: np.ndarray, numeric: list[str],
                       categorical: list[str], min_category_rows: int) -> dict[str, float]:
    """ROC AUC of each feature alone; with more than two classes, one class against the rest, the best
    class per feature (a feature that singles out one class leaks it)."""
    classes = np.unique(label)
    if len(classes) <= 2:
        return _binary_auc(data, rows, (label == classes[-1]).astype(float), numeric, categorical, min_category_rows)
    per_class = [_binary_auc(data, rows, (label == k).astype(float), numeric, categorical, min_category_rows)
                 for k in classes]
    return {column: max(scores[column] for scores in per_class) for column in per_class[0]}


def _binary_auc(data: EncodedSplits, rows: np.ndarray, label: np.ndarray, numeric: list[str],
                categorical: list[str], min_category_rows: int) -> dict[str, float]:
    """ROC AUC of each feature alone (either direction; missing values tried as lowest and as highest;
    categories scored by their label rate)."""
    scores = {}
    for column in numeric:
        values = data.numeric["train"][column][rows]
        finite = values[np.isfinite(values)]
        if finite.size == 0 or finite.min() == finite.max() and np.isfinite(values).all():
            scores[column] = 0.5
            continue
        low, high = finite.min() - 1, finite.max() + 1
        aucs = [roc_auc_score(label, np.where(np.isfinite(values), values, fill)) for fill in (low, high)]
        scores[column] = float(max(max(a, 1 - a) for a in aucs))
    for column in categorical:
        codes = pooled(data.codes["train"][column][rows], min_category_rows)
        _, inverse = np.unique(codes, return_inverse=True)
        rate = np.bincount(inverse, weights=label) / np.bincount(inverse)
        auc = roc_auc_score(label, rate[inverse])
        scores[column] = float(max(auc, 1 - auc))
    return scores


def per_class_auc(data: EncodedSplits, rows: np.ndarray, label: np.ndarray, column: str, numeric: list[str],
                  min_category_rows: int) -> dict[int, float]:
    """One feature's ROC AUC for each class against the rest (binary: the positive class only)."""
    classes = np.unique(label)
    chosen = classes[-1:] if len(classes) <= 2 else classes
    kinds = ([column], []) if column in numeric else ([], [column])
    return {int(k): _binary_auc(data, rows, (label == k).astype(float), *kinds, min_category_rows)[column]
            for k in chosen}


def whole_label(data: EncodedSplits, rows: np.ndarray, label: np.ndarray, numeric: list[str]) -> dict[str, float]:
    """How well one numeric feature reconstructs the whole label: the balanced accuracy (the mean of the
    classes' recalls) of a leave-one-out nearest neighbour on that feature alone (missing values left out).
    Rows sharing a value vote among themselves, less the row itself; a value held once takes the majority of
    the nearer neighbouring value. A row counts as right only on a strict majority, so a discrete column
    (children under six) cannot look perfect by the order of the file. A copy or any map of the label scores
    1; a feature that singles out one class (iris's petal length and setosa) does not."""
    classes = np.unique(label)
    y_all = np.searchsorted(classes, label)
    scores = {}
    for column in numeric:
        values = data.numeric["train"][column][rows]
        finite = np.isfinite(values)
        if finite.sum() < 3:
            scores[column] = 0.0
            continue
        v, y = values[finite], y_all[finite]
        unique, group = np.unique(v, return_inverse=True)
        counts = np.zeros((len(unique), len(classes)))
        np.add.at(counts, (group, y), 1)
        own = counts[group].copy()
        own[np.arange(len(y)), y] -= 1  # leave the row out
        alone = own.sum(axis=1) == 0
        if alone.any():  # a value held once: the nearer neighbouring value's votes
            below, above = np.maximum(group - 1, 0), np.minimum(group + 1, len(unique) - 1)
            left = np.where(group > 0, unique[group] - unique[below], np.inf)
            right = np.where(group < len(unique) - 1, unique[above] - unique[group], np.inf)
            nearest = np.where(left <= right, below, above)
            own[alone] = counts[nearest[alone]]
        mine = own[np.arange(len(y)), y]
        others = own.copy()
        others[np.arange(len(y)), y] = -1
        right_guess = mine > others.max(axis=1)
        scores[column] = float(np.mean([right_guess[y == k].mean() for k in np.unique(y)]))
    return scores


def rest_of_table_auc(data: EncodedSplits, rows: np.ndarray, label: np.ndarray, numeric: list[str],
                      categorical: list[str], without: str, klass: int, *, folds: int, min_category_rows: int,
                      seed: int) -> float | None:
    """What the other features reach together for one class against the rest: out-of-fold ROC AUC of a logistic
    regression on every feature but `without`. A feature that leaks adds what this cannot; None when the
    rest is empty or a class is too small to cross-validate."""
    numeric, categorical = [c for c in numeric if c != without], [c for c in categorical if c != without]
    y = (label == klass).astype(int)
    folds = min(folds, int(np.bincount(y).min()) if len(np.unique(y)) == 2 else 0)
    if not (numeric or categorical) or folds < 2:
        return None
    x = design_matrix(data, rows, numeric, categorical, min_category_rows)
    with threadpool_limits(1):  # one BLAS thread: the near-duplicate check has the other core
        proba = cross_val_predict(LogisticRegression(max_iter=500), x, y, method="predict_proba",
                                  cv=StratifiedKFold(folds, shuffle=True, random_state=seed))[:, 1]
    return float(roc_auc_score(y, proba))


def single_feature_r2(data: EncodedSplits, rows: np.ndarray, label: np.ndarray, numeric: list[str],
                      categorical: list[str], min_category_rows: int, bins: int = 20) -> dict[str, float]:
    """R^2 of predicting a numeric target by one feature alone: the mean target of the feature's quantile bin
    (missing values a bin of their own), or of its category (rare ones pooled). The correlation ratio, so a
    non-linear copy of the target is caught as well as a linear one."""
    def explained(groups: np.ndarray) -> float:
        _, inverse = np.unique(groups, return_inverse=True)
        means = np.bincount(inverse, weights=label) / np.bincount(inverse)
        total = float(((label - label.mean()) ** 2).sum())
        return 1.0 - float(((label - means[inverse]) ** 2).sum()) / total if total > 0 else 0.0

    scores = {}
    for column in numeric:
        values = data.numeric["train"][column][rows]
        finite = np.isfinite(values)
        edges = (np.unique(np.quantile(values[finite], np.linspace(0, 1, bins + 1)[1:-1])) if finite.any()
                 else np.empty(0))
        scores[column] = explained(np.where(finite, np.searchsorted(edges, values), -1))
    for column in categorical:
        scores[column] = explained(pooled(data.codes["train"][column][rows], min_category_rows))
    return scores


def rank_correlation(data: EncodedSplits, rows: np.ndarray, label: np.ndarray, numeric: list[str]) -> dict[str, float]:
    """|Spearman's rho| of each numeric feature with a numeric target, on the rows where the feature is
    present: 1 for any monotone map of the target (its log, a rescaled copy), whatever its linear or binned
    R^2 (a wage table's logwage reaches binned R^2 0.94 and rho 1)."""
    scores = {}
    for column in numeric:
        values = data.numeric["train"][column][rows]
        finite = np.isfinite(values)
        if finite.sum() < 3 or np.ptp(values[finite]) == 0 or np.ptp(label[finite]) == 0:
            scores[column] = 0.0
            continue
        rho = np.corrcoef(rankdata(values[finite]), rankdata(label[finite]))[0, 1]
        scores[column] = float(abs(rho)) if np.isfinite(rho) else 0.0
    return scores


def pair_reconstruction(data: EncodedSplits, rows: np.ndarray, label: np.ndarray, numeric: list[str],
                        ranked: dict[str, float], seed: int, candidates: int = 30) -> dict[str, float]:
    """Out-of-sample R^2 with which two features together reconstruct a numeric target: least squares on
    (a, b, a x b), and on (log a, log b) against log target where all are positive, fitted on one half of the
    rows and scored on the other, both ways (the lower). A sum, difference, product or ratio of two columns
    (a bike-share table's casual + registered = bikers) scores 1; the pairs are taken among the `candidates`
    features of highest rank correlation (30: 435 pairs, about 2 s on 20,000 rows), so the check stays bounded
    on wide tables. With 8, two halves of a county's population hid among midwest's 25 correlated counts."""
    top = sorted(ranked, key=lambda c: -ranked[c])[:candidates]
    half = np.random.default_rng(seed).permutation(len(rows)) % 2 == 0
    scores = {}
    for a, b in combinations(top, 2):
        x_a, x_b = data.numeric["train"][a][rows], data.numeric["train"][b][rows]
        ok = np.isfinite(x_a) & np.isfinite(x_b)
        if ok.sum() < 20:
            continue
        fits = [_halves(np.column_stack([np.ones(ok.sum()), x_a[ok], x_b[ok], x_a[ok] * x_b[ok]]), label[ok], half[ok])]
        if (x_a[ok] > 0).all() and (x_b[ok] > 0).all() and (label[ok] > 0).all():
            fits.append(_halves(np.column_stack([np.ones(ok.sum()), np.log(x_a[ok]), np.log(x_b[ok])]),
                                np.log(label[ok]), half[ok]))
        scores[f"{a} & {b}"] = max(fits)
    return scores


def _halves(x: np.ndarray, y: np.ndarray, half: np.ndarray) -> float:
    """R^2 of least squares fitted on one half and scored on the other, the lower of both ways."""
    found = []
    for fit in (half, ~half):
        if fit.sum() < x.shape[1] + 2 or (~fit).sum() < 2:
            return 0.0
        scale = np.abs(x[fit]).max(axis=0)
        scale[scale == 0] = 1.0
        coef, *_ = np.linalg.lstsq(x[fit] / scale, y[fit], rcond=None)
        residual = y[~fit] - (x[~fit] / scale) @ coef
        total = float(((y[~fit] - y[~fit].mean()) ** 2).sum())
        found.append(1.0 - float((residual ** 2).sum()) / total if total > 0 else 0.0)
    return min(found)


def category_determinism(data: EncodedSplits, rows: np.ndarray, label: np.ndarray, categorical: list[str],
                         min_category_rows: int) -> dict[str, float]:
    """Theil's uncertainty coefficient U(label | category): the share of the label's entropy the
    category removes (0 independent, 1 the category fixes the label)."""
    def entropy(p):
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    width = max(int(label.max()) + 1, 2)
    base = entropy(np.bincount(label.astype(int), minlength=width) / len(label))
    found = {}
    for column in categorical:
        _, inverse = np.unique(pooled(data.codes["train"][column][rows], min_category_rows), return_inverse=True)
        table = np.zeros((inverse.max() + 1, width))
        np.add.at(table, (inverse, label.astype(int)), 1)
        weights = table.sum(1) / len(label)
        conditional = sum(w * entropy(r / r.sum()) for w, r in zip(weights, table, strict=True))
        found[column] = float((base - conditional) / base) if base > 0 else 0.0
    return found


def design_matrix(data: EncodedSplits, rows: np.ndarray, numeric: list[str], categorical: list[str],
                  min_category_rows: int) -> np.ndarray:
    """Standardised numerics (missing as 0 plus a missing flag) and one-hot pooled categories."""
    parts = []
    for column in numeric:
        values = data.numeric["train"][column][rows]
        finite = np.isfinite(values)
        if finite.any():
            centre, spread = values[finite].mean(), values[finite].std() or 1.0
            parts.append(np.where(finite, (values - centre) / spread, 0.0))
        if not finite.all():
            parts.append((~finite).astype(float))
    for column in categorical:
        codes = pooled(data.codes["train"][column][rows], min_category_rows)
        parts.extend((codes == value).astype(float) for value in np.unique(codes)[1:])  # drop one level
    return np.column_stack(parts) if parts else np.zeros((len(rows), 1))


def label_errors(data: EncodedSplits, rows: np.ndarray, label: np.ndarray, numeric: list[str],
                 categorical: list[str], *, confidence: float, folds: int, min_category_rows: int, seed: int) -> dict:
    """Rows whose own label gets probability below 1 - confidence from a logistic regression that never
    saw them (out-of-fold), the simple form of confident learning."""
    x = design_matrix(data, rows, numeric, categorical, min_category_rows)
    y = label.astype(int)
    classes, counts = np.unique(y, return_counts=True)
    folds = min(folds, int(counts.min()))
    if folds < 2:
        return {"count": 0, "fraction": 0.0, "examples": [], "note": "too few rows of one class to cross-validate"}
    with threadpool_limits(1):  # one BLAS thread: the near-duplicate check has the other core
        proba = cross_val_predict(LogisticRegression(max_iter=500), x, y, method="predict_proba",
                                  cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    given = proba[np.arange(len(y)), np.searchsorted(classes, y)]  # columns: the classes of the sample
    flagged = np.flatnonzero(given < 1 - confidence)
    # The reference: the share flagged if each label were drawn from the model's own probabilities. Uniform
    # label noise softens the model as much as the labels, so a clean table and a 30%-noisy one can both sit
    # near it; labels flipped where the model is sure stand out above it.
    expected = float((proba * (proba < 1 - confidence)).sum(axis=1).mean())
    worst = flagged[np.argsort(given[flagged])][:MAX_EXAMPLES]
    return {"count": int(len(flagged)), "fraction": len(flagged) / len(y), "expected_if_calibrated": expected,
            "examples": [{"train_row": int(rows[i]), "label": int(y[i]), "probability_of_label": round(float(given[i]),
                                                                                                       4)}
                         for i in worst]}
