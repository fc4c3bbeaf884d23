"""leakage: evidence that the test score is not inflated by rows, customers or columns that leak.

Checks (each with a threshold from config.leakage):
- exact duplicate rows across splits (features + label, id and timestamp dropped), by row hashing;
- entity ids present in more than one split;
- single-feature target leakage: one feature alone ranking the label (ROC AUC on a seeded sample).
"""

from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from components.io import SPLITS, read_splits
from governance.evidence import StepEvidence
from pipelines.config import Config
MAX_EXAMPLES = 20


def row_hashes(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    return pd.util.hash_pandas_object(frame[columns], index=False).to_numpy()


def duplicate_rows(frames: dict[str, pd.DataFrame], columns: list[str]) -> dict[str, dict]:
    """For each pair of splits: rows of the later split whose content also appears in the earlier one."""
    hashes = {name: row_hashes(frame, columns) for name, frame in frames.items()}
    found = {}
    for first, second in combinations(frames, 2):
        hit = np.isin(hashes[second], hashes[first])
        found[f"{first}_{second}"] = {
            "count": int(hit.sum()),
            "fraction": float(hit.mean()) if len(hit) else 0.0,
            "examples": np.flatnonzero(hit)[:MAX_EXAMPLES].tolist(),  # row numbers in the second split
        }
    return found


def entity_overlap(frames: dict[str, pd.DataFrame], column: str) -> dict[str, dict]:
    ids = {name: pd.unique(frame[column].dropna()) for name, frame in frames.items()}
    found = {}
    for first, second in combinations(frames, 2):
        shared = np.intersect1d(ids[first], ids[second])
        found[f"{first}_{second}"] = {"count": int(len(shared)), "examples": [str(v) for v in shared[:MAX_EXAMPLES]]}
    return found


def single_feature_auc(frame: pd.DataFrame, config: Config) -> dict[str, float]:
    """How well each feature alone ranks the label; categories are scored by their label rate."""
    spec = config.dataset
    sample = frame.sample(n=min(len(frame), config.leakage.sample_rows), random_state=config.split.seed)
    label = sample[spec.target].to_numpy()
    scores = {}
    for column in spec.features:
        values = sample[column]
        if column in spec.categorical:
            values = values.astype("string").fillna("<missing>")
            values = values.map(sample.groupby(values)[spec.target].mean())
        values = pd.to_numeric(values, errors="coerce").astype(float)
        filled = values.fillna(values.median() if values.notna().any() else 0.0).to_numpy()
        auc = roc_auc_score(label, filled)
        scores[column] = float(max(auc, 1 - auc))  # a feature that ranks backwards leaks just as well
    return scores


def leakage(config: Config, split_paths: dict[str, Path], parent_evidence: Path, evidence_dir: Path,
            run_id: str) -> dict:
    spec, limits = config.dataset, config.leakage
    evidence = StepEvidence("leakage", evidence_dir, run_id=run_id, config_digest=config.digest(),
                            parents=[parent_evidence])
    frames = read_splits({name: split_paths[name] for name in SPLITS}, evidence)

    content = [c for c in frames["train"].columns if c not in {spec.entity_id, spec.timestamp}]
    duplicates = duplicate_rows(frames, content)
    for pair, found in duplicates.items():
        evidence.check(f"leakage.duplicates.{pair}", round(found["fraction"], 6), limits.max_duplicate_fraction,
                       found["fraction"] <= limits.max_duplicate_fraction)
    report: dict = {"duplicate_columns": content, "duplicates": duplicates}

    if spec.entity_id:
        overlap = entity_overlap(frames, spec.entity_id)
        for pair, found in overlap.items():
            evidence.check(f"leakage.entity_overlap.{pair}", found["count"], limits.max_entity_overlap,
                           found["count"] <= limits.max_entity_overlap)
        report["entity_overlap"] = overlap

    aucs = single_feature_auc(frames["train"], config)
    worst = max(aucs, key=aucs.get)
    evidence.check("leakage.single_feature_auc", round(aucs[worst], 6), limits.max_single_feature_auc,
                   aucs[worst] < limits.max_single_feature_auc)
    report["single_feature_auc"] = {"sample_rows": min(len(frames["train"]), limits.sample_rows),
                                    "worst_feature": worst, "auc": aucs}
    evidence.metrics["worst_single_feature_auc"] = round(aucs[worst], 6)
    evidence.metrics["duplicate_rows_total"] = sum(d["count"] for d in duplicates.values())
    evidence.write_json("leakage.json", report)
    return evidence.finish(not_measured=["near-duplicate rows", "temporal overlap"])
