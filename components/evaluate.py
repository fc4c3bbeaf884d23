"""evaluate: the model gate. Performance with bootstrap CIs, calibration with temperature scaling fitted
on the validation split, robustness (noise, missingness, category swaps, FGSM, PGD), fairness,
membership inference, out-of-distribution detection, inference latency, and the comparison with the
registry's champion. Writes the calibrated model (the temperature ships with it) and the report.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

from components.evaluation import fairness, metrics, privacy, report, robustness
from components.train.model import CONFIG_FILE, LoadedModel
from governance.evidence import StepEvidence
from governance.rmf import NOT_MEASURED_BY_EVALUATE
from pipelines.config import Config

RMF = {"performance": ["MEASURE 2.3", "MEASURE 2.5", "MANAGE 1.1"], "calibration": ["MEASURE 2.5", "MEASURE 2.6"],
       "robustness": ["MEASURE 2.6", "MEASURE 2.7"], "fairness": ["MEASURE 2.11"], "privacy": ["MEASURE 2.10"],
       "ood": ["MEASURE 2.6"], "latency": ["MEASURE 2.3"], "champion": ["MANAGE 1.1", "MEASURE 2.3"]}


def write_calibrated(model_dir: Path, out_dir: Path, temperature: float) -> LoadedModel:
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in model_dir.iterdir():
        if path.is_file():
            shutil.copyfile(path, out_dir / path.name)
    config = json.loads((out_dir / CONFIG_FILE).read_text())
    config["temperature"] = temperature
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
    return LoadedModel(out_dir)


def shifted_batch(config: Config, test: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    if config.evaluation.ood_data is not None:
        from components.io import read_table

        return read_table(config.evaluation.ood_data), str(config.evaluation.ood_data.name)
    shifted = test.copy()
    for column in config.dataset.numeric:
        shifted[column] = shifted[column] + 2.0 * shifted[column].std()
    return shifted, "test split with every numeric feature shifted by +2 std"


def latency(model: LoadedModel, x_num: torch.Tensor, x_cat: torch.Tensor, repeats: int) -> dict[str, dict]:
    out, threads = {}, torch.get_num_threads()
    torch.set_num_threads(1)  # per-request latency on one core, as a single-threaded server would see it
    for batch in (1, 1024):
        n = min(batch, len(x_num))
        times = []
        for i in range(repeats if batch == 1 else max(repeats // 10, 10)):
            start = (i * n) % max(len(x_num) - n, 1)
            began = time.perf_counter()
            model.proba_from_tensors(x_num[start:start + n], x_cat[start:start + n])
            times.append((time.perf_counter() - began) * 1000)
        out[str(batch)] = {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)),
                           "rows_per_second": float(n / (np.median(times) / 1000))}
    torch.set_num_threads(threads)
    return out


def champion_comparison(config: Config, test: pd.DataFrame, y: np.ndarray, auc: float) -> dict | None:
    """The registry's champion scored on the same test split, or None when there is none."""
    if not config.evaluation.compare_with_champion:
        return None
    import tempfile

    import mlflow
    from mlflow.exceptions import MlflowException

    name = config.registry.model_name
    mlflow.set_tracking_uri(config.registry.tracking_uri)
    try:
        version = mlflow.MlflowClient(config.registry.tracking_uri).get_model_version_by_alias(name, "champion")
    except MlflowException:
        return None
    from registry.models import load_version_model

    with tempfile.TemporaryDirectory() as tmp:
        champion_auc = float(roc_auc_score(y, load_version_model(version, Path(tmp)).predict_proba(test)))
    return {"version": version.version, "champion_auc": champion_auc, "auc": auc,
            "drop": champion_auc - auc, "relative_drop": (champion_auc - auc) / champion_auc}


def sample(n: int, size: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(n, size=min(size, n), replace=False))


def evaluate(config: Config, model_dir: Path, split_paths: dict[str, Path], parent_evidence: Path,
             evidence_dir: Path, run_id: str, calibrated_dir: Path | None = None) -> dict:
    gates, spec, target = config.gates, config.evaluation, config.dataset.target
    evidence = StepEvidence("evaluate", evidence_dir, run_id=run_id, config_digest=config.digest(),
                            parents=[parent_evidence])
    frames = {name: pd.read_parquet(path) for name, path in split_paths.items()}
    for name, frame in frames.items():
        evidence.add_input(f"data/{name}.parquet", split_paths[name], rows=len(frame))
    test, val, train = frames["test"], frames["val"], frames["train"]
    y, y_val, y_train = (f[target].to_numpy().astype(int) for f in (test, val, train))
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        timings[name] = time.perf_counter() - clock
        clock = time.perf_counter()

    # Calibration first: everything after it is measured on the model as it will ship.
    raw = LoadedModel(model_dir)
    x_num, x_cat = raw.features.tensors(test)
    logits = raw.logits(x_num, x_cat)
    calibration_before = metrics.calibration(y, metrics.proba_from_logits(logits))
    temperature = metrics.fit_temperature(raw.logits(*raw.features.tensors(val)), y_val)
    model = write_calibrated(model_dir, calibrated_dir or evidence_dir.parent / "calibrated_model", temperature)
    proba = metrics.proba_from_logits(logits, temperature)
    calibration = metrics.calibration(y, proba)
    lap("calibration")

    performance = metrics.performance(y, proba)
    intervals = metrics.bootstrap_ci(y, proba, spec.bootstrap_samples, spec.seed)
    lap("performance_bootstrap")

    severities = sorted({*spec.noise_severities, gates.noise_severity})
    rows = sample(len(test), spec.attack_rows, spec.seed)
    attacks = [{"name": name, **robustness.attack(model, x_num[rows], x_cat[rows], y[rows], spec.attack_epsilon, steps,
                                                   spec.seed)} for name, steps in (("FGSM", 1), ("PGD", spec.pgd_steps))]
    robust = {"noise": robustness.noise(model, x_num, x_cat, y, severities, spec.seed),
              "missing": robustness.missingness(model, x_num, x_cat, y, spec.missing_rates, spec.seed),
              "swaps": robustness.category_swaps(model, x_num, x_cat, y, spec.swap_rate,
                                                 model.features.cardinalities(), spec.seed),
              "attacks": attacks}
    at_named = next(r for r in robust["noise"] if r["severity"] == gates.noise_severity)
    lap("robustness")

    fair = {column: fairness.by_attribute(test, column, y, proba, spec.fairness_min_group)
            for column in [*config.dataset.sensitive, *spec.slices]}
    lap("fairness")

    members, nonmembers = sample(len(train), spec.mia_rows, spec.seed), sample(len(test), spec.mia_rows, spec.seed + 1)
    size = min(len(members), len(nonmembers))
    member_loss = privacy.per_row_loss(y_train[members[:size]], model.predict_proba(train.iloc[members[:size]]))
    nonmember_loss = privacy.per_row_loss(y[nonmembers[:size]], proba[nonmembers[:size]])
    private = privacy.membership_inference(member_loss, nonmember_loss)
    lap("privacy")

    shifted, source = shifted_batch(config, test)
    shifted_proba = model.predict_proba(shifted)
    shifted_conf = np.maximum(shifted_proba, 1 - shifted_proba)
    test_conf = np.maximum(proba, 1 - proba)
    ood = {"source": source, "rows": len(shifted),
           "auroc": float(roc_auc_score(np.r_[np.zeros(len(test_conf)), np.ones(len(shifted_conf))],
                                        -np.r_[test_conf, shifted_conf]))}
    lap("ood")

    cost = latency(model, x_num, x_cat, spec.latency_repeats)
    lap("latency")

    try:
        champion = champion_comparison(config, test, y, performance["roc_auc"])
    except Exception as exc:  # the registry being unreachable must not hide the rest of the evaluation
        champion = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    lap("champion")

    checks: list[dict[str, Any]] = []

    def gate(check_id: str, value: float, threshold: float | None, passed: bool, rmf: list[str]) -> None:
        if threshold is None:
            return
        evidence.check(check_id, round(float(value), 6), threshold, passed)
        checks.append({"id": check_id, "value": round(float(value), 6), "threshold": threshold, "passed": bool(passed),
                       "rmf": rmf})

    gate("evaluate.roc_auc", performance["roc_auc"], gates.min_auc, performance["roc_auc"] >= gates.min_auc,
         RMF["performance"])
    gate("evaluate.ece", calibration["ece"], gates.max_ece, calibration["ece"] <= gates.max_ece, RMF["calibration"])
    ratio = at_named["roc_auc"] / performance["roc_auc"]
    gate("evaluate.noise_auc_ratio", ratio, gates.min_noise_auc_ratio, ratio >= gates.min_noise_auc_ratio,
         RMF["robustness"])
    for column, result in fair.items():
        if column not in config.dataset.sensitive:
            continue  # slices are reported, sensitive attributes are gated
        dp, eo = result["demographic_parity_difference"], result["equalized_odds_difference"]
        gate(f"evaluate.fairness.{column}.demographic_parity_difference", dp, gates.max_demographic_parity_difference,
             gates.max_demographic_parity_difference is None or dp <= gates.max_demographic_parity_difference,
             RMF["fairness"])
        gate(f"evaluate.fairness.{column}.equalized_odds_difference", eo, gates.max_equalized_odds_difference,
             gates.max_equalized_odds_difference is None or eo <= gates.max_equalized_odds_difference, RMF["fairness"])
    gate("evaluate.mia_auc", private["mia_auc"], gates.max_mia_auc,
         gates.max_mia_auc is None or private["mia_auc"] <= gates.max_mia_auc, RMF["privacy"])
    gate("evaluate.ood_auroc", ood["auroc"], gates.min_ood_auroc,
         gates.min_ood_auroc is None or ood["auroc"] >= gates.min_ood_auroc, RMF["ood"])
    gate("evaluate.latency_p99_ms", cost["1"]["p99_ms"], gates.max_latency_p99_ms,
         gates.max_latency_p99_ms is None or cost["1"]["p99_ms"] <= gates.max_latency_p99_ms, RMF["latency"])
    if champion and "drop" in champion:
        gate("evaluate.champion_auc_drop", champion["drop"], gates.max_champion_auc_drop,
             gates.max_champion_auc_drop is None or champion["drop"] <= gates.max_champion_auc_drop, RMF["champion"])
        gate("evaluate.champion_auc_drop_relative", champion["relative_drop"], gates.max_champion_auc_drop_relative,
             gates.max_champion_auc_drop_relative is None
             or champion["relative_drop"] <= gates.max_champion_auc_drop_relative, RMF["champion"])

    fpr, tpr, thresholds = roc_curve(y, proba)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 200)).astype(int))
    full = {
        "rows": {name: len(frame) for name, frame in frames.items()},
        "samples": {"bootstrap_samples": spec.bootstrap_samples, "attack_rows": len(rows), "mia_rows_each": size,
                    "seed": spec.seed},
        "performance": performance, "confidence_intervals": intervals, "temperature": temperature,
        "calibration_before": calibration_before, "calibration": calibration, "robustness": robust,
        "fairness": fair, "privacy": private, "ood": ood, "latency": cost,
        "champion": champion or "no champion in the registry: nothing to compare with", "checks": checks,
        "roc_curve": {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist(),
                      "thresholds": np.nan_to_num(thresholds[keep], posinf=1.0).tolist()},
        "confusion_matrix": confusion_matrix(y, proba >= 0.5, labels=[0, 1]).tolist(), "timings": timings,
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        report.reliability_png(calibration_before["reliability"], calibration["reliability"], temperature,
                               folder / "reliability.png")
        report.robustness_png(robust["noise"], robust["missing"], performance["roc_auc"], folder / "robustness.png")
        (folder / "evaluation.md").write_text(report.markdown(full))
        for name in ("reliability.png", "robustness.png", "evaluation.md"):
            evidence.add_file(name, folder / name)
    evidence.write_json("evaluation.json", full)

    evidence.metrics = {**{k: round(v, 6) for k, v in performance.items()},
                        **{k: round(calibration[k], 6) for k in ("ece", "adaptive_ece", "mce", "brier", "nll")},
                        "ece_before_scaling": round(calibration_before["ece"], 6), "temperature": round(temperature, 6),
                        "noise_auc": round(at_named["roc_auc"], 6), "noise_auc_ratio": round(ratio, 6),
                        "pgd_auc": round(attacks[1]["roc_auc"], 6), "mia_auc": round(private["mia_auc"], 6),
                        "ood_auroc": round(ood["auroc"], 6), "latency_p99_ms_batch1": round(cost["1"]["p99_ms"], 4),
                        "test_rows": len(test)}
    evidence.details = {"confidence_intervals": intervals, "roc_curve": full["roc_curve"],
                        "confusion_matrix": full["confusion_matrix"], "champion": full["champion"],
                        "timings": {k: round(v, 3) for k, v in timings.items()}}
    return evidence.finish(not_measured=NOT_MEASURED_BY_EVALUATE)
