"""What the model predicts: a binary or multiclass label, or a number. The task holds the label map
(classes in index order) or the target's scaling, ships with the model in model.json, and turns the
network's outputs back into the user's labels and units.

Inference rule when dataset.task is not set: a bool, string or categorical target is classification; a
numeric target with two values is binary, a whole-number target with at most MAX_INFERRED_CLASSES values
is multiclass, any other numeric target is regression. Binary's positive class: dataset.positive_label,
else 1 / true / yes when present, else the larger value.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

KINDS = ("binary", "multiclass", "regression")
MAX_INFERRED_CLASSES = 20
MAX_CLASSES = 200
POSITIVE_WORDS = ("1", "true", "yes", "y", "positive")


class TaskError(ValueError):
    """A target that does not fit the task; the message names the column and the value."""


def label_keys(values: pd.Series) -> pd.Series:
    """Each label as the string the label map uses: whole floats as integers ("1", not "1.0")."""
    if pd.api.types.is_bool_dtype(values):
        return values.map(lambda v: "true" if v else "false").astype("string")
    if pd.api.types.is_numeric_dtype(values):
        numbers = values.astype("float64")
        if np.all(np.mod(numbers.dropna(), 1) == 0):
            return numbers.map(lambda v: str(int(v)) if pd.notna(v) else pd.NA).astype("string")
        return numbers.map(lambda v: repr(float(v)) if pd.notna(v) else pd.NA).astype("string")
    return values.astype("string")


def label_type(values: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(values):
        return "bool"
    if pd.api.types.is_numeric_dtype(values):
        return "integer" if np.all(np.mod(values.astype("float64").dropna(), 1) == 0) else "float"
    return "string"


def infer_kind(values: pd.Series) -> str:
    distinct = values.nunique(dropna=True)
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return "binary" if distinct == 2 else "multiclass"
    if distinct == 2:
        return "binary"
    whole = np.all(np.mod(values.astype("float64").dropna(), 1) == 0)
    return "multiclass" if whole and distinct <= MAX_INFERRED_CLASSES else "regression"


def _sorted_keys(values: pd.Series) -> list[str]:
    keys = label_keys(values).dropna().unique().tolist()
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return sorted(keys, key=float)
    return sorted(keys)


@dataclass
class Task:
    kind: str
    target: str
    classes: list[str] = field(default_factory=list)  # classification: the label of each output index
    label_type: str = "integer"  # integer | float | bool | string: how labels are given back
    mean: float = 0.0  # regression: the network predicts (y - mean) / std
    std: float = 1.0
    interval: float | None = None  # regression: the split-conformal half-width, set by evaluate
    interval_level: float = 0.9
    inferred: bool = False

    @classmethod
    def fit(cls, values: pd.Series, kind: str | None = None, positive_label: str | int | bool | None = None) -> Task:
        """The task of a train split's target column."""
        name = str(values.name)
        chosen = kind or infer_kind(values)
        if chosen == "regression":
            if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
                raise TaskError(f"target {name!r} is not numeric, so it cannot be a regression target")
            numbers = values.astype("float64")
            return cls("regression", name, label_type="float", mean=float(numbers.mean()),
                       std=float(numbers.std()) or 1.0, inferred=kind is None)
        # The label map needs each value once: label_keys makes a Python string per row (some 60 B a row, 400 MB
        # at 7M train rows), and classes, their order and the label type are those of the distinct values
        values = values.drop_duplicates()
        classes = _sorted_keys(values)
        if len(classes) > MAX_CLASSES:
            raise TaskError(f"target {name!r} has {len(classes)} distinct values, more than {MAX_CLASSES} classes "
                            "(set dataset.task: regression if it is a number)")
        if chosen == "binary":
            if len(classes) != 2:
                raise TaskError(f"target {name!r} has {len(classes)} classes, but dataset.task is binary")
            classes = _binary_order(name, classes, positive_label)
        return cls(chosen, name, classes=classes, label_type=label_type(values), inferred=kind is None)

    @property
    def outputs(self) -> int:
        return 1 if self.kind == "regression" else len(self.classes)

    @property
    def positive(self) -> str | None:
        return self.classes[1] if self.kind == "binary" else None

    def encode(self, values: pd.Series, where: str = "") -> np.ndarray:
        """Class indices (int64) or the standardised target (float32); a label the map lacks is an error."""
        if self.kind == "regression":
            return ((values.astype("float64").to_numpy() - self.mean) / self.std).astype(np.float32)
        keys = label_keys(values)
        codes = pd.Index(self.classes).get_indexer(keys.fillna("\x00"))
        if (codes < 0).any():
            row = int(np.flatnonzero(codes < 0)[0])
            raise TaskError(f"{where}target {self.target!r} holds {str(values.iloc[row])!r} in row {row + 1}, a class "
                            f"the train split does not have (classes: {', '.join(self.classes[:10])})")
        return codes.astype(np.int64)

    def numbers(self, values: pd.Series, where: str = "") -> np.ndarray:
        """The labels as the numbers metrics compare: class indices, or the target in its own units."""
        return values.astype("float64").to_numpy() if self.kind == "regression" else self.encode(values, where)

    def decode(self, indices: np.ndarray) -> np.ndarray:
        """Class indices back to the user's labels, in the target's own type."""
        labels = np.asarray(self.classes, dtype=object)[indices]
        if self.label_type == "integer":
            return labels.astype(np.int64)
        if self.label_type == "float":
            return labels.astype(np.float64)
        if self.label_type == "bool":
            return labels == "true"
        return labels

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training loss. An ensemble in training answers members x rows x outputs: the mean of each
        member's own loss, not the loss of their mean, so no member leans on the others (as TabM trains)."""
        if outputs.dim() == 3:
            return torch.stack([self.loss(member, y) for member in outputs]).mean()
        if self.kind == "regression":
            return F.huber_loss(outputs[:, 0].float(), y.float())  # Huber on the standardised target
        return F.cross_entropy(outputs, y.long())

    def unscale(self, outputs: np.ndarray) -> np.ndarray:
        """Regression outputs in the target's own units."""
        return outputs.reshape(-1) * self.std + self.mean

    def summary(self, values: pd.Series) -> dict[str, float]:
        """Positive rate (binary), the share of each class (multiclass), or mean and std (regression)."""
        if self.kind == "regression":
            return {"target_mean": round(float(values.mean()), 6), "target_std": round(float(values.std()), 6)}
        shares = np.bincount(self.encode(values), minlength=len(self.classes)) / len(values)
        if self.kind == "binary":
            return {"positive_rate": round(float(shares[1]), 6)}
        return {f"share_{name}": round(float(share), 6) for name, share in zip(self.classes, shares, strict=True)}

    def to_dict(self) -> dict:
        return asdict(self)


def _binary_order(name: str, classes: list[str], positive_label: str | int | bool | None) -> list[str]:
    """[negative, positive]."""
    if positive_label is not None:
        positive = str(label_keys(pd.Series([positive_label])).iloc[0])
        if positive not in classes:
            raise TaskError(f"dataset.positive_label {positive_label!r} is not a value of target {name!r} "
                            f"(values: {', '.join(classes)})")
    else:
        named = [c for c in classes if c.strip().lower() in POSITIVE_WORDS]
        positive = named[0] if len(named) == 1 else classes[-1]
    return [c for c in classes if c != positive] + [positive]
