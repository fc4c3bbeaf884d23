"""The auditor's first question: is the network better than the simple models? scikit-learn's
HistGradientBoosting, fitted on the same train split and features with its defaults, scored on the same
test rows; the gap is reported, and gated when `gates.max_gap_to_baseline` is set. A linear model
(logistic regression or ridge) is fitted beside it and reported, so the card can say when a network
was not worth its complexity."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from govtrain.components.evaluation.task_metrics import PRIMARY, performance


def gap(kind: str, baseline_value: float, network_value: float) -> float:
    """How much better the baseline does, in the task's headline metric: a difference of ROC AUC or macro-F1,
    or the network's RMSE over the baseline's - 1. Positive: the baseline does better."""
    return network_value / baseline_value - 1.0 if kind == "regression" else baseline_value - network_value


def features(frame: pd.DataFrame, numeric: list[str], categorical: list[str],
             categories: dict[str, pd.Index]) -> pd.DataFrame:
    """Numerics as float; categoricals as pandas categories of the train split (unseen values become missing,
    which the trees handle)."""
    out = frame[numeric].astype(float)
    for column in categorical:
        out[column] = pd.Categorical(frame[column].astype("string"), categories=categories[column])
    return out


def baseline(train: pd.DataFrame, y_train: np.ndarray, test: pd.DataFrame, y_test: np.ndarray,
             numeric: list[str], categorical: list[str], network_auc: float, seed: int) -> dict:
    started = time.perf_counter()
    categories = {c: pd.Index(train[c].astype("string").dropna().unique()) for c in categorical}
    model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=seed)
    with threadpool_limits(1):  # see task_baseline
        model.fit(features(train, numeric, categorical, categories), y_train)
    proba = model.predict_proba(features(test, numeric, categorical, categories))[:, 1]
    auc = float(roc_auc_score(y_test, proba))
    return {"model": "sklearn HistGradientBoostingClassifier (defaults)", "metric": "roc_auc", "roc_auc": auc,
            "network_roc_auc": network_auc, "gap": gap("binary", auc, network_auc),
            "seconds": time.perf_counter() - started}


def task_baseline(kind: str, classes: int, train: pd.DataFrame, y_train: np.ndarray, test: pd.DataFrame,
                  y_test: np.ndarray, numeric: list[str], categorical: list[str], network: dict[str, float],
                  seed: int) -> dict:
    """Multiclass and regression: HistGradientBoosting's metrics on the same split; the gap is in the task's
    headline metric, as "how much better the baseline is": macro-F1 difference, or RMSE ratio - 1."""
    started = time.perf_counter()
    categories = {c: pd.Index(train[c].astype("string").dropna().unique()) for c in categorical}
    estimator = HistGradientBoostingClassifier if kind == "multiclass" else HistGradientBoostingRegressor
    model = estimator(categorical_features="from_dtype", random_state=seed)
    # One OpenMP thread: on a busy node its spinning threads made a 3,500-row multiclass fit take 28 s, not 1 s.
    with threadpool_limits(1):
        model.fit(features(train, numeric, categorical, categories), y_train)
    x_test = features(test, numeric, categorical, categories)
    if kind == "multiclass":
        proba = np.zeros((len(test), classes))
        proba[:, model.classes_] = model.predict_proba(x_test)
        found = performance(kind, y_test, proba)
    else:
        found = performance(kind, y_test, model.predict(x_test))
    name = PRIMARY[kind]
    return {"model": f"sklearn {estimator.__name__} (defaults)", "metric": name, **found,
            f"network_{name}": network[name], "gap": float(gap(kind, found[name], network[name])),
            "seconds": time.perf_counter() - started}


def linear_baseline(kind: str, classes: int, train: pd.DataFrame, y_train: np.ndarray, test: pd.DataFrame,
                    y_test: np.ndarray, numeric: list[str], categorical: list[str], network_value: float) -> dict:
    """Logistic regression (binary, multiclass) or ridge (regression) with scikit-learn's defaults, on the
    standardised numerics (median-imputed) and one-hot categories of the same split; the gap is signed as
    the trees': positive when the linear model does better."""
    started = time.perf_counter()
    columns = [("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric)]
    if categorical:
        columns.append(("categorical", OneHotEncoder(handle_unknown="ignore"), categorical))
    estimator = Ridge() if kind == "regression" else LogisticRegression(max_iter=1000)
    model = make_pipeline(ColumnTransformer(columns), estimator)
    as_input = lambda frame: frame[numeric].astype(float).join(frame[categorical].astype("string")  # noqa: E731
                                                                 .fillna("(missing)"))
    with threadpool_limits(1):  # as for the trees
        model.fit(as_input(train), y_train)
    x_test = as_input(test)
    name = PRIMARY[kind]
    if kind == "regression":
        value = performance(kind, y_test, model.predict(x_test))[name]
    else:
        proba = np.zeros((len(test), classes))
        proba[:, model.classes_] = model.predict_proba(x_test)
        value = (float(roc_auc_score(y_test, proba[:, 1])) if kind == "binary"
                 else performance(kind, y_test, proba)[name])
    return {"model": f"sklearn {type(estimator).__name__} (defaults, one-hot categories)", "metric": name,
            name: float(value), f"network_{name}": network_value, "gap": float(gap(kind, value, network_value)),
            "seconds": time.perf_counter() - started}


def comparison(found: dict) -> list[dict]:
    """The trees and the linear model beside the network, one row each: what the model card shows."""
    rows = []
    for base in (found, found.get("linear")):
        if base:
            name = base["metric"]
            rows.append({"model": base["model"], "metric": name, "value": round(base[name], 6),
                         "network": round(base[f"network_{name}"], 6), "gap": round(base["gap"], 6)})
    return rows
