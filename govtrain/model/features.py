"""Turning a table into model tensors: standardised numerics and category indices.

The fitted statistics are plain JSON that ships with the model, so prediction needs no pickle.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch

UNKNOWN = 0  # index for missing and unseen categories


@dataclass
class FeatureSpec:
    numeric: list[str]
    categorical: list[str]
    means: list[float]
    stds: list[float]
    vocab: dict[str, list[str]]  # column -> categories seen in train; index = position + 1

    @classmethod
    def fit(cls, frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> FeatureSpec:
        values = frame[numeric].astype("float64")
        means = values.mean().fillna(0.0)
        stds = values.std().fillna(1.0).replace(0.0, 1.0)
        vocab = {c: sorted(frame[c].dropna().astype(str).unique().tolist()) for c in categorical}
        return cls(numeric, categorical, means.tolist(), stds.tolist(), vocab)

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
            out[:, j] = codes + 1  # -1 (unseen or missing) -> UNKNOWN
        return out

    def tensors(self, frame: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.numeric_array(frame)), torch.from_numpy(self.category_array(frame))

    def to_dict(self) -> dict:
        return asdict(self)
