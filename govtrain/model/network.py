"""The tabular MLP, and saving/loading it as safetensors weights plus a JSON config (no pickle)."""
from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from govtrain.model.features import FeatureSpec
from govtrain.model.interval import IntervalScale
from govtrain.model.task import Task

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "model.json"


class PeriodicEmbedding(nn.Module):
    """Each numeric feature as cos/sin of learned frequencies, then its own linear layer and a ReLU: the
    "PLR(lite)" embedding of Gorishniy et al. 2022 (On Embeddings for Numerical Features in Tabular Deep
    Learning). A plain MLP on standardised numbers draws smooth functions; the periodic features let it draw
    the sharp thresholds that gradient-boosted trees find (on the demo: +0.012 test ROC AUC)."""

    def __init__(self, n_features: int, frequencies: int, sigma: float, dim: int):
        super().__init__()
        self.frequencies = nn.Parameter(torch.randn(n_features, frequencies) * sigma)
        self.weight = nn.Parameter(torch.randn(n_features, 2 * frequencies, dim) / (2 * frequencies) ** 0.5)
        self.bias = nn.Parameter(torch.zeros(n_features, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angles = 2 * torch.pi * self.frequencies[None] * x[..., None]
        waves = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)  # rows x features x 2k
        return torch.relu(torch.einsum("bnk,nkd->bnd", waves, self.weight) + self.bias).flatten(1)


class CodeEmbedding(nn.Module):
    """An embedding per value of a numeric that holds whole numbers only, at most a few hundred of them (a
    commune code, an age in years), beside its periodic embedding: HistGradientBoosting's 255 bins resolve
    each such value, while cos/sin of frequencies near sigma cannot tell 194 neighbouring codes apart
    (vietnam_i: R^2 0.44 against the trees' 0.56). The value is looked up from the standardised number, the
    nearest of the column's anchors (values held by enough train rows), so noise on the number moves the
    lookup as it moves a tree's split."""

    def __init__(self, codes: list[list], embedding_dim: int | str):
        super().__init__()
        self.columns = [int(column) for column, _ in codes]
        widths = embedding_widths([len(anchors) for _, anchors in codes], embedding_dim)
        self.embeddings = nn.ModuleList(nn.Embedding(len(anchors), width)
                                        for (_, anchors), width in zip(codes, widths, strict=True))
        self.width = sum(widths)
        for i, (_, anchors) in enumerate(codes):  # midpoints between neighbouring anchors, from the config
            values = torch.tensor(anchors, dtype=torch.float32)
            self.register_buffer(f"edges{i}", (values[1:] + values[:-1]) / 2, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([emb(torch.bucketize(x[:, j].contiguous(), getattr(self, f"edges{i}")))
                          for i, (j, emb) in enumerate(zip(self.columns, self.embeddings, strict=True))], dim=1)


def embedding_widths(cardinalities: list[int], embedding_dim: int | str) -> list[int]:
    """One width per categorical: a fixed number, or "auto": min(32, round(1.6 x cardinality^0.56)), the rule
    fast.ai uses (a 3-value column gets 3, a 50-value column 14)."""
    if embedding_dim == "auto":
        return [min(32, max(2, round(1.6 * card ** 0.56))) for card in cardinalities]
    return [int(embedding_dim)] * len(cardinalities)


class TabularMLP(nn.Module):
    """Numerics (raw, or periodic embeddings) and one embedding per categorical, concatenated, through an MLP
    to the task's outputs (a logit per class, or one number for regression)."""

    def __init__(self, n_numeric: int, cardinalities: list[int], embedding_dim: int | str, hidden: list[int],
                 outputs: int = 2, numeric_embedding: dict | None = None, dropout: float = 0.0):
        super().__init__()
        widths = embedding_widths(cardinalities, embedding_dim)
        self.embeddings = nn.ModuleList(nn.Embedding(card, width) for card, width in zip(cardinalities, widths,
                                                                                         strict=True))
        self.numeric = None
        numeric_width = n_numeric
        if numeric_embedding and numeric_embedding.get("kind") == "periodic" and n_numeric:
            self.numeric = PeriodicEmbedding(n_numeric, numeric_embedding["frequencies"], numeric_embedding["sigma"],
                                             numeric_embedding["dim"])
            numeric_width = n_numeric * numeric_embedding["dim"]
        self.codes = None
        if numeric_embedding and numeric_embedding.get("codes"):
            self.codes = CodeEmbedding(numeric_embedding["codes"], embedding_dim)
            numeric_width += self.codes.width
        layers: list[nn.Module] = []
        width = numeric_width + sum(widths)
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
            width = size
        layers.append(nn.Linear(width, outputs))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        numeric = self.numeric(x_num) if self.numeric is not None else x_num
        parts = [numeric] + ([self.codes(x_num)] if self.codes is not None else [])
        parts += [emb(x_cat[:, j]) for j, emb in enumerate(self.embeddings)]
        return self.mlp(torch.cat(parts, dim=1))


class Ensemble(nn.Module):
    """`members` networks of one shape, each from its own initial weights. In training each answers for itself
    (members x rows x outputs), so each learns the target on its own, as TabM's members do (Gorishniy et al.,
    ICLR 2025); in evaluation the answer is the mean of their outputs, whose variance on a small table is what
    one network lacked (decisions 61)."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        out = torch.stack([member(x_num, x_cat) for member in self.members])
        return out if self.training else out.mean(dim=0)


def build_model(features: FeatureSpec, embedding_dim: int | str, hidden: list[int], outputs: int = 2,
                numeric_embedding: dict | None = None, dropout: float = 0.0, members: int = 1) -> nn.Module:
    def one() -> TabularMLP:
        return TabularMLP(len(features.numeric), features.cardinalities(), embedding_dim, hidden, outputs,
                          numeric_embedding, dropout)
    return one() if members == 1 else Ensemble([one() for _ in range(members)])


DEFAULT_NETWORK = "mlp"


def factory_of(reference: str) -> Callable[[FeatureSpec, Task], nn.Module]:
    """A user's network factory, "package.module:function": called with the feature spec and the task, it
    returns an nn.Module whose forward(x_num, x_cat) gives task.outputs values per row."""
    module_name, _, name = reference.partition(":")
    factory = getattr(importlib.import_module(module_name), name, None)
    if not callable(factory):
        raise ImportError(f"{reference}: module {module_name} has no function {name!r}")
    return factory


def factory_source(reference: str) -> Path:
    """The file that defines a factory: its digest goes into the evidence, and it ships with the model."""
    module = importlib.import_module(reference.partition(":")[0])
    return Path(inspect.getfile(module)).resolve()


def build_network(features: FeatureSpec, task: Task, *, network: str = DEFAULT_NETWORK,
                  embedding_dim: int | str = 8, hidden: list[int] | None = None,
                  numeric_embedding: dict | None = None, dropout: float = 0.0, members: int = 1) -> nn.Module:
    """The configured network (training.model): govtrain's MLP (an ensemble of `members`), or a user's factory."""
    if network == DEFAULT_NETWORK:
        return build_model(features, embedding_dim, hidden if hidden is not None else [256, 256], task.outputs,
                           numeric_embedding, dropout, members)
    return factory_of(network)(features, task)


# A model saved before tasks existed is the binary 0/1 classifier it was then.
LEGACY_TASK = {"kind": "binary", "target": "label", "classes": ["0", "1"]}


def save_model(model: nn.Module, features: FeatureSpec, out_dir: Path, *, embedding_dim: int | str,
               hidden: list[int], task: Task, temperature: float = 1.0, network: str = DEFAULT_NETWORK,
               numeric_embedding: dict | None = None, dropout: float = 0.0, members: int = 1) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out_dir / WEIGHTS_FILE))
    config = {"architecture": "TabularMLP" if network == DEFAULT_NETWORK else network, "network": network,
              "embedding_dim": embedding_dim, "hidden": hidden, "temperature": temperature,
              "numeric_embedding": numeric_embedding, "dropout": dropout, "members": members,
              "features": features.to_dict(), "task": task.to_dict()}
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))


class LoadedModel:
    """A trained model ready to score a DataFrame with the training schema."""

    def __init__(self, model_dir: str | Path):
        model_dir = Path(model_dir)
        config = json.loads((model_dir / CONFIG_FILE).read_text())
        self.features = FeatureSpec(**config["features"])
        self.temperature = float(config.get("temperature", 1.0))
        self.task = Task(**config.get("task", LEGACY_TASK))
        self.network = config.get("network", DEFAULT_NETWORK)
        self.model = build_network(self.features, self.task, network=self.network,
                                   embedding_dim=config["embedding_dim"], hidden=config["hidden"],
                                   numeric_embedding=config.get("numeric_embedding"),
                                   dropout=config.get("dropout", 0.0), members=config.get("members", 1))
        self.model.load_state_dict(load_file(str(model_dir / WEIGHTS_FILE)))
        self.model.eval()
        scale = config.get("interval_scale")  # regression: the interval follows the row (model/interval.py)
        self.interval_scale = IntervalScale(**scale) if scale else None

    @torch.no_grad()
    def logits(self, x_num: torch.Tensor, x_cat: torch.Tensor, batch: int = 65536) -> torch.Tensor:
        x_num = self.features.clamped(x_num)  # beyond train's range, as at its edge
        chunks = [self.model(x_num[i:i + batch], x_cat[i:i + batch]) for i in range(0, len(x_num), batch)]
        return torch.cat(chunks) / self.temperature

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability of the positive class, one per row (binary models)."""
        x_num, x_cat = self.features.tensors(frame)
        return self.proba_from_tensors(x_num, x_cat)

    def proba_from_tensors(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> np.ndarray:
        return torch.softmax(self.logits(x_num, x_cat), dim=1)[:, 1].numpy()

    def outputs(self, frame: pd.DataFrame) -> np.ndarray:
        return self.outputs_from_tensors(*self.features.tensors(frame))

    def outputs_from_tensors(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> np.ndarray:
        """Classification: the probability of every class (rows x classes); regression: the prediction in
        the target's units."""
        if self.task.kind == "regression":
            return self.task.unscale(self.logits(x_num, x_cat).double().numpy())
        return torch.softmax(self.logits(x_num, x_cat).double(), dim=1).numpy()

    def half_widths(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> np.ndarray | None:
        """Regression: each row's interval half-width, q x sigma(x) (or the one width of a model calibrated before
        intervals followed the row); None before evaluate has calibrated it."""
        if self.task.interval is None:
            return None
        if self.interval_scale is None:
            return np.full(len(x_num), self.task.interval)
        return self.task.interval * self.interval_scale.sigma(self.features.clamped(x_num).numpy(), x_cat.numpy())

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """What the served model answers, per row.

        binary: `label` and `probability` (of the positive class); multiclass: `label` and
        `probability_<class>` for each class; regression: `prediction`, and `lower`/`upper` of the
        split-conformal interval when evaluate has fitted one (at task.interval_level)."""
        x_num, x_cat = self.features.tensors(frame)
        out = self.outputs_from_tensors(x_num, x_cat)
        task = self.task
        if task.kind == "regression":
            answer = pd.DataFrame({"prediction": out})
            widths = self.half_widths(x_num, x_cat)
            if widths is not None:
                answer["lower"], answer["upper"] = out - widths, out + widths
            return answer
        answer = pd.DataFrame({"label": task.decode(out.argmax(axis=1))})
        if task.kind == "binary":
            answer["probability"] = out[:, 1]
        else:
            for k, name in enumerate(task.classes):
                answer[f"probability_{name}"] = out[:, k]
        return answer
