"""evaluate for multiclass and regression models: the same gate as binary's, in each task's metrics.

multiclass: accuracy, macro-F1, log loss, Brier; temperature scaling fitted on val, top-label ECE beyond
sampling noise and classwise ECE; a confusion matrix. regression: RMSE, MAE, R^2; a split-conformal
interval fitted on val whose coverage on test is the calibration measure (it ships with the model).
Both: robustness (noise, missingness, swaps, FGSM/PGD on the task's loss), error gaps between groups,
membership inference on the per-row loss, OOD (multiclass: max probability), latency, the
HistGradientBoosting baseline and the champion.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix, roc_auc_score

from govtrain.components.evaluation import fairness, metrics, model_gate, privacy, robustness, task_report
from govtrain.components.evaluation import task_metrics as tm
from govtrain.components.evaluation.baseline import NOISE_DRAWS, comparison, kept_of, simple_models
from govtrain.components.evaluation.common import (
    Splits,
    Stopwatch,
    latency,
    robustness_suite,
    sample,
    shifted_batch,
    write_calibrated,
)
from govtrain.components.evaluation.importance import explain
from govtrain.core.config import Config
from govtrain.governance.evidence import Record, StepEvidence
from govtrain.governance.gates import rmf_of
from govtrain.governance.rmf import NOT_MEASURED_BY_EVALUATE
from govtrain.model.interval import IntervalScale, conformal, fit_scale
from govtrain.model.network import LoadedModel


def calibrate(config: Config, model_dir: Path, out_dir: Path, data: Splits) -> dict[str, Any]:
    """Multiclass: temperature scaling on val. Regression: the split-conformal half-width on val. Both are
    written into the shipped model; everything after is measured on that model."""
    raw, y, seed = LoadedModel(model_dir), data.y("test"), config.evaluation.seed
    x_num, x_cat = raw.features.tensors(data.test)
    if data.task.kind == "multiclass":
        temperature = metrics.fit_temperature(raw.logits(*raw.features.tensors(data.val)), data.y("val"))
        model = write_calibrated(model_dir, out_dir, temperature)
        out = model.outputs_from_tensors(x_num, x_cat)
        return {"model": model, "out": out, "x_num": x_num, "x_cat": x_cat, "temperature": temperature,
                "calibration_before": tm.multiclass_calibration(y, raw.outputs_from_tensors(x_num, x_cat), seed),
                "calibration": tm.multiclass_calibration(y, out, seed)}
    level = config.evaluation.interval_level
    scale, q = fit_interval(raw, data, level, seed)
    model = write_calibrated(model_dir, out_dir, 1.0, q, level, scale.to_json())
    out = model.outputs_from_tensors(x_num, x_cat)
    widths = model.half_widths(x_num, x_cat)
    assert widths is not None  # q was just written
    return {"model": model, "out": out, "x_num": x_num, "x_cat": x_cat, "temperature": 1.0, "widths": widths,
            "interval_scale": scale,
            "calibration": {**tm.interval_coverage(y, out, widths, level), "q": q}}


SCALE_ROWS = 50_000  # train rows the interval's scale model is fitted on (seeded sample)


def fit_interval(raw: LoadedModel, data: Splits, level: float, seed: int) -> tuple[IntervalScale, float]:
    """Normalised split-conformal (model/interval.py): the scale fitted on train rows, q on val."""
    rows = sample(len(data.train), SCALE_ROWS, seed)
    train = data.train.iloc[rows]
    t_num, t_cat = raw.features.tensors(train)
    residual = data.y("train")[rows] - raw.outputs_from_tensors(t_num, t_cat)
    scale = fit_scale(t_num.numpy(), t_cat.numpy(), raw.features.cardinalities(), residual, seed)
    v_num, v_cat = raw.features.tensors(data.val)
    q = conformal(scale, v_num.numpy(), v_cat.numpy(), data.y("val") - raw.outputs_from_tensors(v_num, v_cat), level)
    return scale, q


def membership_inference(config: Config, model: LoadedModel, data: Splits, out: np.ndarray) -> dict[str, Any]:
    spec, kind = config.evaluation, data.task.kind
    members, nonmembers = privacy.attack_rows(len(data.train), len(data.test), spec.mia_rows, spec.seed)
    member_out = model.outputs(data.train.iloc[members])
    return privacy.membership_inference(tm.per_row_loss(kind, data.y("train")[members], member_out),
                                        tm.per_row_loss(kind, data.y("test")[nonmembers], out[nonmembers]))


def ood_detection(config: Config, model: LoadedModel, data: Splits, out: np.ndarray) -> dict[str, Any] | None:
    """Multiclass: how well the top probability separates test from a shifted batch. Regression has no
    confidence score of its own, so it is not measured (drift monitoring watches the inputs instead)."""
    if data.task.kind != "multiclass":
        return None
    shifted, source = shifted_batch(config, data.test)
    shifted_conf, test_conf = model.outputs(shifted).max(axis=1), out.max(axis=1)
    return {"source": source, "rows": len(shifted),
            "auroc": float(roc_auc_score(np.r_[np.zeros(len(test_conf)), np.ones(len(shifted_conf))],
                                         -np.r_[test_conf, shifted_conf]))}


def champion_comparison(config: Config, data: Splits, found: dict[str, Any]) -> dict | None:
    """The registry's champion on the same test rows, in the task's headline metric."""
    if not config.evaluation.compare_with_champion:
        return None
    from govtrain.registry.models import champion_model

    kind, name = data.task.kind, tm.PRIMARY[data.task.kind]
    with tempfile.TemporaryDirectory() as tmp:
        champion = champion_model(config.tracking_uri, config.registry.model_name, Path(tmp))
        if champion is None:
            return None
        version, model = champion
        if model.task.kind != kind or model.task.classes != data.task.classes:
            return {"version": version.version, "note": f"the champion is a {model.task.kind} model of other "
                    "classes or task: not comparable"}
        theirs = tm.performance(kind, data.y("test"), model.outputs(data.test))[name]
    ours = found["performance"][name]
    relative = (ours - theirs) / theirs if name in tm.LOWER_IS_BETTER else (theirs - ours) / theirs
    return {"version": version.version, "metric": name, f"champion_{name}": theirs, name: ours,
            "relative_drop": float(relative)}


def measure(config: Config, model_dir: Path, out_dir: Path, data: Splits, watch: Stopwatch) -> dict[str, Any]:
    spec, kind, y = config.evaluation, data.task.kind, data.y("test")
    found = calibrate(config, model_dir, out_dir, data)
    model, out, x_num, x_cat = found["model"], found["out"], found["x_num"], found["x_cat"]
    watch.lap("calibration")
    found["performance"] = tm.performance(kind, y, out)
    if kind == "multiclass":  # what "beats the trivial predictor" reads (evaluation/model_gate.py)
        found["performance"]["macro_auc"] = tm.macro_auc(y, out)
    found["confidence_intervals"] = tm.bootstrap_ci(y, out, lambda a, b: {
        **tm.performance(kind, a, b), **({"macro_auc": tm.macro_auc(a, b)} if kind == "multiclass" else {})},
                                                    spec.bootstrap_samples, spec.seed)
    watch.lap("performance_bootstrap")
    found["robustness"] = robustness_suite(config, model, x_num, x_cat, y)
    # The gate's share, over as many noise draws as the trees get (baseline.NOISE_DRAWS), paired with theirs
    noisy = robustness.noisy_outputs(model, x_num, x_cat, config.gates.noise_severity, spec.seed, NOISE_DRAWS)
    found["noise_metric_ratio"] = kept_of(kind, y, out, noisy)
    watch.lap("robustness")
    errors = tm.per_row_error(kind, y, out)
    found["fairness"] = {column: fairness.error_gaps(data.test, column, errors, spec.fairness_min_group)
                         for column in [*config.dataset.sensitive, *spec.slices]}
    watch.lap("fairness")
    found["importance"] = explain(model, kind, data.test, y, config.dataset.sensitive, spec.fairness_min_group,
                                  spec.importance_rows, spec.importance_repeats, spec.seed)
    watch.lap("importance")
    found["privacy"] = membership_inference(config, model, data, out)
    watch.lap("privacy")
    found["ood"] = ood_detection(config, model, data, out)
    watch.lap("ood")
    found["latency"] = latency(model, x_num, x_cat, spec.latency_repeats)
    watch.lap("latency")
    found["baseline"] = simple_models(kind, len(data.task.classes), data.train, data.y("train"), data.test, y,
                                      config.dataset.numeric, config.dataset.categorical,
                                      found["performance"][tm.PRIMARY[kind]], spec.seed, config.gates.noise_severity,
                                      network_out=out, mia_rows=spec.mia_rows, network_noisy=noisy)
    watch.lap("baseline")
    try:
        found["champion"] = champion_comparison(config, data, found)
    except Exception as exc:  # the registry being unreachable must not hide the rest of the evaluation
        found["champion"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    watch.lap("champion")
    return found


def record_gates(evidence: StepEvidence, config: Config, kind: str, found: dict[str, Any]) -> None:
    """The task's gates, each with the rows it was measured on and its 95% interval where one is computed."""
    perf, cal, ci = found["performance"], found["calibration"], found["confidence_intervals"]
    rows = cal["rows"]
    model_gate.record(evidence, config, kind, perf, ci, found["baseline"], found["noise_metric_ratio"], rows)
    if kind == "multiclass":
        evidence.gate("evaluate.ece", cal["ece_excess"], config, rows=rows)
    else:
        # The upper end of its Wilson interval: refused when evidently under, not for 72 test rows' wobble.
        low, high = cal["coverage_ci"]
        evidence.gate("evaluate.interval_coverage", high, config, rows=rows, interval=[low, high],
                      reference=f"{cal['coverage']:.4f} of {rows} test rows inside the "
                                f"{config.evaluation.interval_level} interval; 95% Wilson interval {low:.4f} to "
                                f"{high:.4f}")
    gap = ("error_rate_difference", "error_difference") if kind == "multiclass" else ("error_ratio", "error_ratio")
    for column in config.dataset.sensitive:
        evidence.gate(f"evaluate.fairness.{gap[0]}", found["fairness"][column][gap[1]], config,
                      check_id=f"evaluate.fairness.{column}.{gap[0]}", rows=rows)
    model_gate.privacy_gate(evidence, config, found["privacy"], found["baseline"]["mia_auc"])
    if found["ood"] is not None:
        evidence.gate("evaluate.ood_auroc", found["ood"]["auroc"], config, rows=rows + found["ood"]["rows"])
    evidence.gate("evaluate.latency_p99_ms", found["latency"]["1"]["p99_ms"], config)
    champion = found["champion"]
    if champion and "relative_drop" in champion:
        evidence.gate("evaluate.champion_metric_drop_relative", champion["relative_drop"], config, rows=rows)


def headline(kind: str, found: dict[str, Any], rows: int) -> dict[str, float]:
    """The record's metrics, named as each task's reviewers read them."""
    cal, base = found["calibration"], found["baseline"]
    out = {k: round(v, 6) for k, v in found["performance"].items()}
    if kind == "multiclass":
        out |= {k: round(cal[k], 6) for k in ("ece", "ece_noise_q95", "ece_excess", "classwise_ece")}
        out |= {"ece_before_scaling": round(found["calibration_before"]["ece"], 6),
                "temperature": round(found["temperature"], 6), "ood_auroc": round(found["ood"]["auroc"], 6)}
    else:
        out |= {"interval_coverage": round(cal["coverage"], 6), "interval_half_width": round(cal["half_width"], 6),
                "interval_half_width_p10": round(cal["half_width_p10"], 6),
                "interval_half_width_p90": round(cal["half_width_p90"], 6), "interval_level": cal["level"],
                "interval_follows_row": found["interval_scale"].follows_row,
                "interval_scale_spearman": round(found["interval_scale"].spearman, 6)}
    return {**out, "noise_metric_ratio": round(found["noise_metric_ratio"], 6),
            "pgd_" + tm.PRIMARY[kind]: round(found["robustness"]["attacks"][1][tm.PRIMARY[kind]], 6),
            "mia_auc": round(found["privacy"]["mia_auc"], 6),
            f"baseline_{base['metric']}": round(base[base["metric"]], 6),
            f"linear_{base['metric']}": round(base["linear"][base["metric"]], 6),
            "latency_p99_ms_batch1": round(found["latency"]["1"]["p99_ms"], 4), "test_rows": rows}


def evaluate_task(config: Config, model_dir: Path, data: Splits, evidence: StepEvidence, out_dir: Path) -> Record:
    kind, watch = data.task.kind, Stopwatch()
    found = measure(config, model_dir, out_dir, data, watch)
    record_gates(evidence, config, kind, found)
    y = data.y("test")
    samples = {"bootstrap_samples": config.evaluation.bootstrap_samples, "seed": config.evaluation.seed,
               "attack_rows": found["robustness"]["attack_rows"], "mia_rows_each": found["privacy"]["rows_each"]}
    full = {"task": data.task.to_dict(), "rows": {name: len(getattr(data, name)) for name in ("train", "val", "test")},
            "samples": samples,
            **{k: found[k] for k in ("performance", "confidence_intervals", "calibration", "fairness", "privacy",
                                     "ood", "latency", "baseline", "noise_metric_ratio", "importance")},
            "robustness": {k: v for k, v in found["robustness"].items() if k != "attack_rows"},
            "champion": found["champion"] or "no champion in the registry: nothing to compare with",
            "checks": [{**c, "rmf": rmf_of(c["id"])} for c in evidence.checks], "timings": watch.timings}
    if kind == "multiclass":
        full["calibration_before"], full["temperature"] = found["calibration_before"], found["temperature"]
        full["confusion_matrix"] = confusion_matrix(y, found["out"].argmax(axis=1),
                                                    labels=range(len(data.task.classes))).tolist()
        full["per_class"] = classification_report(y, found["out"].argmax(axis=1), labels=range(len(data.task.classes)),
                                                  target_names=data.task.classes, output_dict=True, zero_division=0)
    task_report.write(evidence, full, y, found["out"], found.get("widths"))
    evidence.metrics = {**headline(kind, found, len(y)), **evidence.metrics}
    evidence.details = {**evidence.details, "task": full["task"], "confidence_intervals": full["confidence_intervals"],
                        "champion": full["champion"], "baselines": comparison(found["baseline"]),
                        "importance": found["importance"],
                        "timings": {k: round(v, 3) for k, v in watch.timings.items()}}
    evidence.details["fairness"], not_judged = fairness.judged(found["fairness"], config.dataset.sensitive)
    if kind == "multiclass":
        evidence.details |= {"confusion_matrix": full["confusion_matrix"], "classes": data.task.classes}
    not_measured = [*NOT_MEASURED_BY_EVALUATE, *not_judged]
    if found["ood"] is None:
        not_measured.append("out-of-distribution detection (a regression model has no confidence score; drift "
                            "monitoring watches its inputs)")
    return evidence.finish(not_measured=not_measured)

