"""The default model gate measured against references, not constants (docs/decisions.md 51): the network must
beat the trivial predictor beyond its own 95% interval, stay within a margin of the best simple model fitted
on the same split, and keep under noise what HistGradientBoosting keeps under the same noise, less a margin.
An absolute floor (gates.min_auc, min_macro_f1, min_r2, min_noise_auc_ratio) applies where a person sets one,
and its record still states what the references achieved, so a refusal can be read against them."""
from __future__ import annotations

from typing import Any

from govtrain.components.evaluation.task_metrics import PRIMARY
from govtrain.core.config import Config
from govtrain.governance.evidence import StepEvidence

FLOOR = {"binary": ("evaluate.roc_auc", "roc_auc", "gates.min_auc"),
         "multiclass": ("evaluate.macro_f1", "macro_f1", "gates.min_macro_f1"),
         "regression": ("evaluate.r2", "r2", "gates.min_r2")}


GAP_METRIC = {"binary": "roc_auc", "multiclass": "macro_f1", "regression": "r2"}


def _half_width(metric: str, performance: dict[str, float], intervals: dict[str, list[float]]) -> float:
    """Half the network's 95% interval of a metric, in its points."""
    low, high = intervals.get(metric, [performance[metric], performance[metric]])
    return (high - low) / 2


def best_gap(kind: str, performance: dict[str, float], simple: dict[str, Any]) -> tuple[str, float, float]:
    """The simple model the network is measured against, its value and its lead, in points of ROC AUC,
    macro-F1 or R^2: points, not the RMSE ratio the card shows, so that one margin reads the same in every
    task (diamonds: RMSE 5.5% above the trees' is R^2 0.981 against 0.982)."""
    metric = GAP_METRIC[kind]
    best = max((simple, simple["linear"]), key=lambda model: model[metric])
    return best["model"].removeprefix("sklearn "), best[metric], best[metric] - performance[metric]


def beats_trivial(evidence: StepEvidence, config: Config, kind: str, performance: dict[str, float],
                  intervals: dict[str, list[float]], trivial: dict[str, Any], said: str, rows: int) -> None:
    """The lower end of the network's 95% interval against the trivial predictor on the same rows: ROC AUC
    (multiclass: the mean of the classes' one-against-the-rest AUCs) above 0.5, or R^2 above train's mean's.
    A ranking measure for classification: a model whose argmax is always the majority (heating: 5 systems, 60%
    gas) or whose probabilities a small val split calibrates badly may still know more than the class shares."""
    metric = {"binary": "roc_auc", "multiclass": "macro_auc", "regression": "r2"}[kind]
    floor = trivial["value"] if kind == "regression" else 0.5
    value, (low, high) = performance[metric], intervals.get(metric, [performance[metric]] * 2)
    model = trivial["model"] if kind != "multiclass" else "train's class shares as probabilities"
    evidence.gate("evaluate.beats_trivial", low, config, rows=rows, interval=[low, high], threshold=round(floor, 6),
                  reference=f"no threshold was set by a person {said}; {model} on the same test rows: {metric} "
                            f"{floor:.4f}; the network: {value:.4f} (95% interval {low:.4f} to {high:.4f})")


def record(evidence: StepEvidence, config: Config, kind: str, performance: dict[str, float],
           intervals: dict[str, list[float]], simple: dict[str, Any], noise_kept: float, rows: int) -> None:
    """The performance and robustness rows of the model gate, each with its reference stated."""
    gate_id, metric, knob = FLOOR[kind]
    trees, trivial = simple, simple["trivial"]
    value, (low, high) = performance[metric], intervals.get(metric, [performance[metric]] * 2)
    against = (f"{trees['model'].removeprefix('sklearn ')} on the same split: {trees['metric']} "
               f"{trees[trees['metric']]:.4f}")
    if evidence.gate(gate_id, value, config, rows=rows, interval=[low, high],
                     reference=f"set by a person ({knob}); {against}") is None:
        beats_trivial(evidence, config, kind, performance, intervals, trivial, f"({knob}); {against}", rows)
    margin = config.gates.max_gap_to_baseline
    if margin is not None:
        metric, (model, theirs, lead) = GAP_METRIC[kind], best_gap(kind, performance, simple)
        half = _half_width(metric, performance, intervals)
        evidence.gate("evaluate.baseline_gap", lead, config, rows=rows, threshold=round(max(margin, half), 6),
                      reference=f"{model} on the same split: {metric} {theirs:.4f}, the network "
                                f"{performance[metric]:.4f}; margin {margin} or the network's 95% half-width "
                                f"{half:.4f}, the wider")
    noise_id = "evaluate.noise_auc_ratio" if kind == "binary" else "evaluate.noise_metric_ratio"
    kept, severity = trees["noise_kept"], trees["noise_severity"]
    said = f"HistGradientBoosting keeps {kept:.4f} under the same noise ({severity} x each feature's std)"
    if config.gates.min_noise_auc_ratio is not None:
        evidence.gate(noise_id, noise_kept, config, rows=rows,
                      reference=f"set by a person (gates.min_noise_auc_ratio); {said}")
    elif "noise_gap_interval" in trees:
        # Both shares are measured on the test rows, each over several noise draws: the trees' capped at 1 (noise
        # that helps the trees on 27 wine rows is luck), and the margin widened to the half-width of the paired
        # 95% interval of the gap between them when wider (what these rows cannot tell apart).
        low, high = trees["noise_gap_interval"]
        half = (high - low) / 2
        margin = max(config.gates.noise_ratio_margin, half)
        evidence.gate(noise_id, noise_kept, config, rows=rows, threshold=round(min(kept, 1.0) - margin, 6),
                      interval=[low, high],
                      reference=f"no threshold was set by a person; {said} on the same test rows (at most 1 counted; "
                                f"each the mean of {trees.get('noise_draws', 1)} noise draws), less margin "
                                f"{config.gates.noise_ratio_margin} or the 95% half-width {half:.4f} of the gap "
                                f"between the two shares (paired resamples of the test rows, interval {low:.4f} to "
                                f"{high:.4f}), the wider")
    else:  # no paired outputs at hand: the network's own relative half-width widens the margin
        name = PRIMARY[kind]
        relative = _half_width(name, performance, intervals) / performance[name] if performance[name] else 0.0
        margin = max(config.gates.noise_ratio_margin, relative)
        evidence.gate(noise_id, noise_kept, config, rows=rows, threshold=round(min(kept, 1.0) - margin, 6),
                      reference=f"no threshold was set by a person; {said} on the same test rows (at most 1 counted), "
                                f"less margin {config.gates.noise_ratio_margin} or the network's relative 95% "
                                f"half-width {relative:.4f}, the wider")


def reference_lines(checks: list[dict[str, Any]], simple: dict[str, Any]) -> list[str]:
    """evaluation.md's account of the references: the trivial predictor, what the trees kept under noise, any
    pooled categories, and each gate's reference in words."""
    trivial = simple["trivial"]
    lines = [f"- trivial predictor ({trivial['model']}): {trivial['metric']} {trivial['value']:.4f}",
             f"- HistGradientBoosting kept {simple['noise_kept']:.4f} of its headline metric under noise of "
             f"{simple['noise_severity']} x each feature's std"]
    lines += [f"- the simple models pooled {n} rare values of {column!r} (HistGradientBoosting takes 255 categories)"
              for column, n in simple.get("pooled_categories", {}).items()]
    lines += ["", "## What each default gate was measured against", ""]
    lines += [f"- {c['id']}: {c['reference']}" for c in checks if c.get("reference")] or ["- nothing"]
    return lines


def privacy_gate(evidence: StepEvidence, config: Config, privacy: dict[str, Any], trees_mia: float | None = None
                 ) -> None:
    """The membership-inference gate reads the lower end of the attack AUC's 95% interval: it refuses an attack
    evidently above the limit, not the chance wobble of a few dozen rows. The limit is gates.max_mia_auc, or
    what the same attack gets from HistGradientBoosting on these rows when that is higher (gates.mia_against_
    trees): a table so small that any model fits it exactly is not the network's leak."""
    low, high = privacy["mia_auc_interval"]
    limit, said = config.gates.max_mia_auc, ""
    if limit is None:
        return
    if trees_mia is not None and config.gates.mia_against_trees:
        limit, said = max(limit, trees_mia), f"; HistGradientBoosting under the same attack: {trees_mia:.4f}"
    evidence.gate("evaluate.mia_auc", low, config, rows=2 * privacy["rows_each"], interval=[low, high],
                  threshold=round(limit, 6),
                  reference=f"attack AUC {privacy['mia_auc']:.4f} on {privacy['rows_each']} members and as many "
                            f"test rows; its 95% interval {low:.4f} to {high:.4f} (Hanley-McNeil){said}; limit "
                            f"gates.max_mia_auc {config.gates.max_mia_auc} or the trees' value, the larger")
