"""Turning a table into model tensors: standardised numerics and category indices.

The fitted statistics are plain JSON that ships with the model, so prediction needs no pickle.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch

UNKNOWN = 0  # index for missing, unseen and rare categories


@dataclass
class FeatureSpec:
    numeric: list[str]
    categorical: list[str]
    means: list[float]
    stds: list[float]
    vocab: dict[str, list[str]]  # column -> categories with an embedding of their own; index = position + 1
    # column -> categories seen in train on fewer than min_rows rows each: they share UNKNOWN's embedding
    rare: dict[str, list[str]] = field(default_factory=dict)
    # each numeric's smallest and largest value in train: a scored value is clamped into them (LoadedModel), as a
    # tree is flat beyond the values it split on, where a ReLU network would go on in a straight line
    lows: list[float] = field(default_factory=list)
    highs: list[float] = field(default_factory=list)

    @classmethod
    def fit(cls, frame: pd.DataFrame, numeric: list[str], categorical: list[str], min_rows: int = 1) -> FeatureSpec:
        """Means and deviations of the numerics, and each categorical's vocabulary. A category held by fewer
        than min_rows train rows is pooled with missing and unseen values (index UNKNOWN): an embedding
        trained on one row can only memorise that row's label, and UNKNOWN, which serves every category
        train never saw, would otherwise never be trained at all."""
        values = frame[numeric].astype("float64")
        means = values.mean().fillna(0.0)
        stds = values.std().fillna(1.0).replace(0.0, 1.0)
        vocab, rare = {}, {}
        for column in categorical:
            counts = frame[column].dropna().astype(str).value_counts()
            vocab[column] = sorted(counts.index[counts >= min_rows].tolist())
            rare[column] = sorted(counts.index[counts < min_rows].tolist())
        lows, highs = values.min().fillna(0.0), values.max().fillna(0.0)
        return cls(numeric, categorical, means.tolist(), stds.tolist(), vocab, rare, lows.tolist(), highs.tolist())

    def standard_bounds(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The train range of each numeric in standardised units (None: a model saved before ranges were kept)."""
        if len(self.lows) != len(self.numeric) or not self.numeric:
            return None
        means, stds = np.asarray(self.means), np.asarray(self.stds)
        low, high = (np.asarray(self.lows) - means) / stds, (np.asarray(self.highs) - means) / stds
        return torch.from_numpy(low.astype(np.float32)), torch.from_numpy(high.astype(np.float32))

    def clamped(self, x_num: torch.Tensor) -> torch.Tensor:
        """Standardised numerics clamped to train's range: beyond it a row is answered as at its edge (the worker
        validates, and LoadedModel scores, through this one rule)."""
        bounds = self.standard_bounds()
        return x_num if bounds is None else torch.clamp(x_num, *bounds)

    def seen(self, column: str) -> set[str]:
        """Every category train held, pooled or not (what serving calls known)."""
        return {*self.vocab[column], *self.rare.get(column, [])}

    def cardinalities(self) -> list[int]:
        return [len(self.vocab[c]) + 1 for c in self.categorical]

    def numeric_array(self, frame: pd.DataFrame) -> np.ndarray:
        """Standardised numerics; a missing value becomes the train mean (0 after scaling)."""
        values = frame[self.numeric].astype("float64").to_numpy()
        scaled = (values - np.asarray(self.means)) / np.asarray(self.stds)
        return np.ascontiguousarray(np.nan_to_num(scaled, nan=0.0), dtype=np.float32)

    def category_array(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.zeros((len(frame), len(self.categorical)), dtype=np.int64)
        for j, column in enumerate(self.categorical):
            index = pd.Index(self.vocab[column])
            codes = index.get_indexer(frame[column].astype("string").fillna("\x00"))
            out[:, j] = codes + 1  # -1 (unseen, rare or missing) -> UNKNOWN
        return out

    def tensors(self, frame: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.numeric_array(frame)), torch.from_numpy(self.category_array(frame))

    def to_dict(self) -> dict:
        return asdict(self)
