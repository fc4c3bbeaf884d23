"""evaluate: the model gate. Performance with bootstrap CIs, calibration with temperature scaling fitted
on the validation split, robustness (noise, missingness, category swaps, FGSM, PGD), fairness,
membership inference, out-of-distribution detection, inference latency, and the comparison with the
registry's champion. Writes the calibrated model (the temperature ships with it) and the report.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

from govtrain.components.evaluation import fairness, metrics, model_gate, privacy, report, robustness
from govtrain.components.evaluation.baseline import NOISE_DRAWS, comparison, kept_of, simple_models
from govtrain.components.evaluation.common import (
    Splits,
    Stopwatch,
    latency,
    robustness_suite,
    shifted_batch,
    write_calibrated,
)
from govtrain.components.evaluation.importance import explain
from govtrain.components.evaluation.multitask import evaluate_task
from govtrain.components.evaluation.sampled import headline_on_every_row, read_split, train_task
from govtrain.components.evaluation.task_metrics import headline_metric
from govtrain.core.config import Config
from govtrain.governance.evidence import Check, Record, StepEvidence
from govtrain.governance.gates import rmf_of
from govtrain.governance.rmf import NOT_MEASURED_BY_EVALUATE
from govtrain.model.network import LoadedModel


def champion_comparison(config: Config, test: pd.DataFrame, y: np.ndarray, auc: float) -> dict | None:
    """The registry's champion scored on the same test split, or None when there is none."""
    if not config.evaluation.compare_with_champion:
        return None
    import tempfile

    from govtrain.registry.models import champion_model

    with tempfile.TemporaryDirectory() as tmp:
        found = champion_model(config.tracking_uri, config.registry.model_name, Path(tmp))
        if found is None:
            return None
        version, model = found
        if model.task.kind != "binary":
            return {"version": version.version, "note": f"the champion is a {model.task.kind} model: not comparable"}
        champion_auc = float(roc_auc_score(y, model.predict_proba(test)))
    return {"version": version.version, "champion_auc": champion_auc, "auc": auc,
            "drop": champion_auc - auc, "relative_drop": (champion_auc - auc) / champion_auc}


def calibrate(model_dir: Path, out_dir: Path, data: Splits, seed: int = 0) -> dict[str, Any]:
    """Temperature scaling fitted on val; everything after it is measured on the model as it will ship."""
    raw = LoadedModel(model_dir)
    x_num, x_cat = raw.features.tensors(data.test)
    logits = raw.logits(x_num, x_cat)
    temperature = metrics.fit_temperature(raw.logits(*raw.features.tensors(data.val)), data.y("val"))
    proba = metrics.proba_from_logits(logits, temperature)
    return {"model": write_calibrated(model_dir, out_dir, temperature), "x_num": x_num, "x_cat": x_cat,
            "proba": proba, "temperature": temperature,
            "before": metrics.calibration(data.y("test"), metrics.proba_from_logits(logits),
                                          seed=seed),
            "after": metrics.calibration(data.y("test"), proba, seed=seed)}


def membership_inference(config: Config, model: LoadedModel, data: Splits, proba: np.ndarray) -> dict[str, Any]:
    spec = config.evaluation
    members, nonmembers = privacy.attack_rows(len(data.train), len(data.test), spec.mia_rows, spec.seed)
    member_loss = privacy.per_row_loss(data.y("train")[members], model.predict_proba(data.train.iloc[members]))
    nonmember_loss = privacy.per_row_loss(data.y("test")[nonmembers], proba[nonmembers])
    return privacy.membership_inference(member_loss, nonmember_loss)


def ood_detection(config: Config, model: LoadedModel, test: pd.DataFrame, proba: np.ndarray) -> dict[str, Any]:
    """How well the model's confidence separates the test split from a shifted batch."""
    shifted, source = shifted_batch(config, test)
    shifted_proba = model.predict_proba(shifted)
    shifted_conf = np.maximum(shifted_proba, 1 - shifted_proba)
    test_conf = np.maximum(proba, 1 - proba)
    return {"source": source, "rows": len(shifted),
            "auroc": float(roc_auc_score(np.r_[np.zeros(len(test_conf)), np.ones(len(shifted_conf))],
                                         -np.r_[test_conf, shifted_conf]))}


def record_gates(evidence: StepEvidence, config: Config, found: dict[str, Any]) -> None:
    """Every evaluate row of governance.gates.GATES, each against its configured threshold, with the rows it
    was measured on and its 95% interval where one is computed."""
    rows, ci = found["calibration"]["rows"], found["confidence_intervals"]
    model_gate.record(evidence, config, "binary", found["performance"], ci, found["baseline"],
                      found["noise_auc_ratio"], rows)
    evidence.gate("evaluate.ece", found["calibration"]["ece_excess"], config, rows=rows)  # above sampling noise
    for column in config.dataset.sensitive:  # slices are reported, sensitive attributes are gated
        for metric in ("demographic_parity_difference", "equalized_odds_difference"):
            evidence.gate(f"evaluate.fairness.{metric}", found["fairness"][column][metric], config,
                          check_id=f"evaluate.fairness.{column}.{metric}", rows=rows)
    model_gate.privacy_gate(evidence, config, found["privacy"], found["baseline"]["mia_auc"])
    evidence.gate("evaluate.ood_auroc", found["ood"]["auroc"], config, rows=rows + found["ood"]["rows"])
    evidence.gate("evaluate.latency_p99_ms", found["latency"]["1"]["p99_ms"], config)
    champion = found["champion"]
    if champion and "drop" in champion:
        evidence.gate("evaluate.champion_auc_drop", champion["drop"], config, rows=rows)
        evidence.gate("evaluate.champion_auc_drop_relative", champion["relative_drop"], config, rows=rows)


def measure(config: Config, model_dir: Path, out_dir: Path, data: Splits, watch: Stopwatch) -> dict[str, Any]:
    """Every measurement of the model gate, phase by phase, on the calibrated model."""
    spec, y = config.evaluation, data.y("test")
    cal = calibrate(model_dir, out_dir, data, config.evaluation.seed)
    model, proba, x_num, x_cat = cal["model"], cal["proba"], cal["x_num"], cal["x_cat"]
    watch.lap("calibration")
    found: dict[str, Any] = {"model": model, "proba": proba, "temperature": cal["temperature"],
                             "calibration_before": cal["before"], "calibration": cal["after"],
                             "performance": metrics.performance(y, proba),
                             "confidence_intervals": metrics.bootstrap_ci(y, proba, spec.bootstrap_samples, spec.seed)}
    watch.lap("performance_bootstrap")
    found["robustness"] = robustness_suite(config, model, x_num, x_cat, y)
    # The gate's share, over as many noise draws as the trees get (baseline.NOISE_DRAWS), paired with theirs
    noisy = robustness.noisy_outputs(model, x_num, x_cat, config.gates.noise_severity, spec.seed, NOISE_DRAWS)
    found["noise_auc"] = float(np.mean([headline_metric("binary", y, n) for n in noisy]))
    found["noise_auc_ratio"] = kept_of("binary", y, proba, noisy)
    watch.lap("robustness")
    found["fairness"] = {column: fairness.by_attribute(data.test, column, y, proba, spec.fairness_min_group)
                         for column in [*config.dataset.sensitive, *spec.slices]}
    watch.lap("fairness")
    found["importance"] = explain(model, "binary", data.test, y, config.dataset.sensitive, spec.fairness_min_group,
                                  spec.importance_rows, spec.importance_repeats, spec.seed)
    watch.lap("importance")
    found["privacy"] = membership_inference(config, model, data, proba)
    watch.lap("privacy")
    found["ood"] = ood_detection(config, model, data.test, proba)
    watch.lap("ood")
    found["latency"] = latency(model, x_num, x_cat, spec.latency_repeats)
    watch.lap("latency")
    found["baseline"] = simple_models("binary", 2, data.train, data.y("train"), data.test, y, config.dataset.numeric,
                                      config.dataset.categorical, found["performance"]["roc_auc"], spec.seed,
                                      config.gates.noise_severity, network_out=proba, mia_rows=spec.mia_rows,
                                      network_noisy=noisy)
    watch.lap("baseline")
    try:
        found["champion"] = champion_comparison(config, data.test, y, found["performance"]["roc_auc"])
    except Exception as exc:  # the registry being unreachable must not hide the rest of the evaluation
        found["champion"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    watch.lap("champion")
    return found


def full_report(data: Splits, found: dict[str, Any], checks: list[Check], spec: Any,
                timings: dict[str, float]) -> dict[str, Any]:
    """evaluation.json: everything measured, with the samples and seeds it was measured on."""
    y, proba = data.y("test"), found["proba"]
    fpr, tpr, thresholds = roc_curve(y, proba)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 200)).astype(int))
    robust = {k: v for k, v in found["robustness"].items() if k != "attack_rows"}
    return {
        "rows": {name: len(getattr(data, name)) for name in ("train", "val", "test")},
        "samples": {"bootstrap_samples": spec.bootstrap_samples, "attack_rows": found["robustness"]["attack_rows"],
                    "mia_rows_each": found["privacy"]["rows_each"], "seed": spec.seed},
        "performance": found["performance"], "confidence_intervals": found["confidence_intervals"],
        "temperature": found["temperature"], "calibration_before": found["calibration_before"],
        "calibration": found["calibration"], "robustness": robust, "fairness": found["fairness"],
        "importance": found["importance"],
        "privacy": found["privacy"], "ood": found["ood"], "latency": found["latency"], "baseline": found["baseline"],
        "champion": found["champion"] or "no champion in the registry: nothing to compare with",
        "checks": [{**c, "rmf": rmf_of(c["id"])} for c in checks],
        "roc_curve": {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist(),
                      "thresholds": np.nan_to_num(thresholds[keep], posinf=1.0).tolist()},
        "confusion_matrix": confusion_matrix(y, proba >= 0.5, labels=[0, 1]).tolist(), "timings": timings,
    }


def write_report_files(evidence: StepEvidence, full: dict[str, Any], y: np.ndarray, proba: np.ndarray,
                       severity: float) -> None:
    noise_gate = next((c for c in evidence.checks if c["id"] == "evaluate.noise_auc_ratio"), None)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        report.reliability_png(full["calibration_before"]["reliability"], full["calibration"]["reliability"],
                               full["temperature"], folder / "reliability.png")
        report.robustness_png(full["robustness"]["noise"], full["robustness"]["missing"],
                              full["performance"]["roc_auc"], folder / "robustness.png",
                              noise_gate["threshold"] if noise_gate else None, severity)
        report.roc_pr_png(y, proba, folder / "roc_pr.png")
        full["ks"] = report.score_distributions_png(y, proba, folder / "score_distributions.png")
        names = ["reliability.png", "robustness.png", "roc_pr.png", "score_distributions.png"]
        if full["importance"]["features"]:
            report.importance_png(full["importance"], folder / "importance.png")
            names.append("importance.png")
        (folder / "evaluation.md").write_text(report.markdown(full))
        for name in [*names, "evaluation.md"]:
            evidence.add_file(name, folder / name)
    evidence.write_json("evaluation.json", full)


def headline(found: dict[str, Any], rows: int) -> dict[str, Any]:
    """The record's metrics: what the summary, the model card and MLflow show."""
    cal, cost = found["calibration"], found["latency"]
    return {**{k: round(v, 6) for k, v in found["performance"].items()},
            **{k: round(cal[k], 6) for k in ("ece", "ece_noise_q95", "ece_excess", "adaptive_ece", "mce", "brier",
                                             "nll")},
            "ece_before_scaling": round(found["calibration_before"]["ece"], 6),
            "temperature": round(found["temperature"], 6), "noise_auc": round(found["noise_auc"], 6),
            "noise_auc_ratio": round(found["noise_auc_ratio"], 6),
            "pgd_auc": round(found["robustness"]["attacks"][1]["roc_auc"], 6),
            "mia_auc": round(found["privacy"]["mia_auc"], 6), "ood_auroc": round(found["ood"]["auroc"], 6),
            "baseline_roc_auc": round(found["baseline"]["roc_auc"], 6),
            "linear_roc_auc": round(found["baseline"]["linear"]["roc_auc"], 6),
            "latency_p99_ms_batch1": round(cost["1"]["p99_ms"], 4), "test_rows": rows}


def evaluate(config: Config, model_dir: Path, split_paths: dict[str, Path], parent_evidence: Path,
             evidence_dir: Path, run_id: str, calibrated_dir: Path | None = None) -> Record:
    """The model gate: measure, gate every row of the table, write the report and the calibrated model."""
    evidence = StepEvidence("evaluate", evidence_dir, run_id=run_id, config_digest=config.digest(),
                            parents=[parent_evidence])
    spec, cap = config.dataset, config.evaluation.max_rows
    read = {name: read_split(path, cap, config.evaluation.seed) for name, path in split_paths.items()}
    frames = {name: frame for name, (frame, _) in read.items()}
    for name, (_, rows) in read.items():
        evidence.add_input(f"data/{name}.parquet", split_paths[name], rows=rows)
    sampled = {name: {"rows": rows, "measured": len(frame)} for name, (frame, rows) in read.items()
               if rows > len(frame)}
    data = Splits.of(frames, config, train_task(split_paths["train"], spec.target, spec.task, spec.positive_label)
                     if sampled else None)
    if sampled:  # stated in the record and the card: which splits were sampled, and the headline on every row
        every = headline_on_every_row(model_dir, split_paths["test"], data.task, spec.target)
        evidence.details = {"sampled": {"max_rows": cap, "seed": config.evaluation.seed, "splits": sampled,
                                        "headline_on_every_test_row": every,
                                        "rule": "govtrain/components/evaluation/sampled.py"}}
        evidence.metrics = {f"{every['metric']}_every_test_row": every["value"], "test_rows_in_split": every["rows"]}
    if data.task.kind != "binary":
        return evaluate_task(config, model_dir, data, evidence,
                             calibrated_dir or evidence_dir.parent / "calibrated_model")
    watch = Stopwatch()
    found = measure(config, model_dir, calibrated_dir or evidence_dir.parent / "calibrated_model", data, watch)
    record_gates(evidence, config, found)
    full = full_report(data, found, evidence.checks, config.evaluation, watch.timings)
    write_report_files(evidence, full, data.y("test"), found["proba"], config.gates.noise_severity)
    evidence.metrics = {**headline(found, len(data.test)), **evidence.metrics}
    evidence.details = {**evidence.details, "task": data.task.to_dict(), "classes": data.task.classes,
                        "confidence_intervals": full["confidence_intervals"], "roc_curve": full["roc_curve"],
                        "confusion_matrix": full["confusion_matrix"], "champion": full["champion"],
                        "baselines": comparison(found["baseline"]), "importance": full["importance"],
                        "timings": {k: round(v, 3) for k, v in watch.timings.items()}}
    evidence.details["fairness"], not_judged = fairness.judged(found["fairness"], config.dataset.sensitive)
    return evidence.finish(not_measured=[*NOT_MEASURED_BY_EVALUATE, *not_judged])
