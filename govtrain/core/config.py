"""The one typed configuration of govtrain, loaded from YAML and validated by pydantic.

Relative paths in a config file are resolved against the file's own folder, so a config works the
same from any working directory. The resolved config travels to every KFP step as one JSON string.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

from govtrain.core.bounded import ConfigError, bounded_yaml, check_shape  # noqa: F401 - config's own names
from govtrain.core.catalogue import by_id
from govtrain.core.cluster import ClusterSpec
from govtrain.core.leakage_config import LeakageSpec
from govtrain.core.secrets import refuse_credentials
from govtrain.core.state import embedded_tracking_uri, state_dir
from govtrain.core.training_config import TrainingSpec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CsvOptions(_Strict):
    """How a CSV file is written (a UTF-8 byte-order mark is accepted whatever the encoding says)."""
    delimiter: str = Field(",", min_length=1, max_length=1)
    decimal: str = Field(".", min_length=1, max_length=1)
    encoding: str = "utf-8"
    # Cells read as missing besides the empty one. pandas' own tokens ("NA", "None", "null"...) are missing only
    # in a column whose other cells are numbers or booleans; in a text column they stay text (data/io.py)
    na_values: list[str] = Field(default_factory=list)


COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst")
# An object-store location (s3://bucket/prefix, gs://, abfs://, hdfs://, file://), read through pyarrow's
# filesystems with credentials from the environment (govtrain/data/sources.py); kept as the string it was given.
ObjectUri = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")]


class DatasetSpec(_Strict):
    path: ObjectUri | Path  # a file, a folder of Parquet files (hive partitions are columns), or an ObjectUri
    format: Literal["csv", "parquet"] | None = None  # None: taken from the file suffix (data.csv.gz is csv)
    csv: CsvOptions = Field(default_factory=CsvOptions)
    target: str
    task: Literal["binary", "multiclass", "regression"] | None = None  # None: inferred from the target (stated)
    positive_label: str | int | bool | None = None  # binary: None takes 1 / true / yes, else the larger value
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    entity_id: str | None = None
    timestamp: str | None = None
    sensitive: list[str] = Field(default_factory=list)

    @field_validator("path")
    @classmethod
    def _no_credentials(cls, value: str | Path) -> str | Path:
        if isinstance(value, str):  # a URI: its keys come from the environment, never the config
            refuse_credentials(value, "dataset.path", "give the object store's credentials in the environment "
                               "(AWS_ACCESS_KEY_ID, GOOGLE_APPLICATION_CREDENTIALS, ...)")
        return value

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    @property
    def source_name(self) -> str:
        """The table's last path part (a file, a folder, an object-store prefix), as records and cards name it."""
        return str(self.path).rstrip("/").rsplit("/", 1)[-1]

    @property
    def file_format(self) -> str:
        return self.format or format_by_suffix(self.path)

    @model_validator(mode="after")
    def _has_features(self) -> DatasetSpec:
        if not self.features:
            raise ValueError("list at least one numeric or categorical feature")
        clash = {self.target, self.entity_id, self.timestamp} & set(self.features)
        if clash:
            raise ValueError(f"column {sorted(c for c in clash if c)[0]!r} is both a feature and the "
                             f"target/id/timestamp")
        return self


def format_by_suffix(path: str | Path) -> str:
    """csv for name.csv and name.csv.gz (.bz2, .xz, .zst); parquet otherwise."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in COMPRESSED_SUFFIXES:
        suffixes = suffixes[:-1]
    return "csv" if suffixes and suffixes[-1] == ".csv" else "parquet"


class Fractions(_Strict):
    train: float = Field(0.7, gt=0, lt=1)
    val: float = Field(0.15, gt=0, lt=1)
    test: float = Field(0.15, gt=0, lt=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> Fractions:
        if abs(self.train + self.val + self.test - 1.0) > 1e-6:
            raise ValueError("train + val + test must sum to 1")
        return self


class SplitSpec(_Strict):
    strategy: Literal["random", "group", "time"] = "random"
    fractions: Fractions = Field(default_factory=Fractions)
    seed: int = 0
    stratify: bool = True  # random split of a classification target: every class in the same shares per split
    # A Parquet table of this many rows or more is split a batch at a time in bounded memory, by seeded hashes
    # (govtrain/data/stream_split.py says why 1,000,000); below it the table is held and split exactly
    stream_from_rows: int = Field(1_000_000, ge=30)


class ValidationSpec(_Strict):
    suite: Path | None = None  # None: a structural suite drafted from the train split, "not reviewed"
    # native: GE's verdicts from our column engine for the types it supports, GE for the rest; ge: GE for all
    engine: Literal["native", "ge"] = "native"


class GateSpec(_Strict):
    """Thresholds of the model gate; each task reads the rows that concern it (evaluate.* in
    governance/gates.py says which). A performance floor or noise ratio left None is not a constant: the model
    is measured against a reference on the same split (the trivial predictor, the simple models, what
    HistGradientBoosting keeps under the same noise), and the evidence states which kind held. Other
    thresholds left None are measured and reported, not gated."""
    min_auc: float | None = Field(None, ge=0, le=1)  # binary: an absolute floor, when a person sets one
    min_macro_f1: float | None = Field(None, ge=0, le=1)  # multiclass: the same
    min_r2: float | None = Field(None, le=1)  # regression: the same
    # How far the network may trail the best simple model (HistGradientBoosting or the linear model) fitted on
    # the same split, in points of ROC AUC, macro-F1 or R^2; widened to the network's own 95% interval
    # half-width when wider. None: reported only (docs/decisions.md 51).
    max_gap_to_baseline: float | None = Field(0.05, ge=0)
    min_interval_coverage: float | None = Field(0.85, ge=0, le=1)  # regression, at evaluation.interval_level
    max_group_error_rate_difference: float | None = Field(0.15, ge=0, le=1)  # multiclass: worst - best group
    max_group_error_ratio: float | None = Field(1.5, ge=1)  # regression: mean absolute error, worst / best group
    max_ece: float = Field(0.05, ge=0, le=1)  # after temperature scaling (the model ships with it)
    # The share of the headline metric kept under noise; None: at least what HistGradientBoosting keeps under the
    # same noise on the same rows, less noise_ratio_margin
    min_noise_auc_ratio: float | None = Field(None, ge=0, le=1)
    noise_ratio_margin: float = Field(0.05, ge=0, le=1)
    noise_severity: float = Field(0.5, ge=0)  # the named severity the ratio is read at (x each feature's std)
    max_demographic_parity_difference: float | None = Field(0.25, ge=0, le=1)
    max_equalized_odds_difference: float | None = Field(0.25, ge=0, le=1)
    max_mia_auc: float | None = Field(0.6, ge=0.5, le=1)  # on the lower end of the attack AUC's 95% interval
    # ... or, when higher, what the same attack gets from HistGradientBoosting on these rows (false: absolute)
    mia_against_trees: bool = True
    min_ood_auroc: float | None = Field(None, ge=0, le=1)
    max_latency_p99_ms: float | None = Field(None, gt=0)  # at batch 1
    max_champion_auc_drop: float | None = Field(0.01, ge=0)  # absolute: champion AUC - ours
    max_champion_auc_drop_relative: float | None = Field(0.02, ge=0)  # relative to the champion's AUC


class EvaluationSpec(_Strict):
    """Sample sizes and settings of the evaluation (all seeded; the report states them)."""
    bootstrap_samples: int = Field(200, ge=20)
    # A split of more rows is measured on a seeded sample of this many, read a batch at a time; the headline
    # metric is also computed on every test row, streamed (evaluation/sampled.py)
    max_rows: int = Field(500_000, ge=1000)
    noise_severities: list[float] = Field(default_factory=lambda: [0.1, 0.25, 0.5, 1.0, 2.0])
    missing_rates: list[float] = Field(default_factory=lambda: [0.05, 0.1, 0.2, 0.3, 0.5])
    swap_rate: float = Field(0.1, ge=0, le=1)
    interval_level: float = Field(0.9, gt=0, lt=1)  # regression: the split-conformal interval served with predictions
    attack_rows: int = Field(2000, ge=50)
    attack_epsilon: float = Field(0.1, gt=0)  # L-inf, in standardised units
    pgd_steps: int = Field(10, ge=2)
    mia_rows: int = Field(2000, ge=50)
    fairness_min_group: int = Field(100, ge=1)  # smaller groups are reported, not gated
    slices: list[str] = Field(default_factory=list)  # extra columns to report metrics by
    ood_data: Path | None = None  # a shifted batch; None: the test split with numerics shifted by 2 std
    latency_repeats: int = Field(200, ge=10)
    importance_rows: int = Field(5000, ge=50)  # permutation importance (MEASURE 2.9), seeded test rows
    importance_repeats: int = Field(5, ge=2)
    compare_with_champion: bool = True
    seed: int = 0


class RegistrySpec(_Strict):
    tracking_uri: str | None = None  # None: the embedded sqlite store in the state folder
    model_name: str = ""  # "": the config file's stem (credit.yaml registers "credit")
    experiment: str = "govtrain"
    # For the model card (MAP 1.1, MAP 2.2): what the model is for, where it must not be used, and the
    # datasheet of its data (motivation, collection, preprocessing, known gaps...). Free text.
    intended_use: str = "not stated (set registry.intended_use)"
    limitations: list[str] = Field(default_factory=list)
    datasheet: dict[str, str] = Field(default_factory=dict)

    @field_validator("tracking_uri")
    @classmethod
    def _no_credentials(cls, uri: str | None) -> str | None:
        return refuse_credentials(uri, "registry.tracking_uri", "set MLFLOW_TRACKING_USERNAME and "
                                  "MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)")


class ColumnTest(_Strict):
    """Overrides Evidently's automatic choice for one column."""
    method: Literal["wasserstein", "jensenshannon", "ks", "chisquare", "z"]
    threshold: float = Field(gt=0)  # p-value tests drift below it, distances at or above it


class MonitoringSpec(_Strict):
    drift_share: float = Field(0.5, gt=0, le=1)  # dataset drift when this share of columns drifts (Evidently's rule)
    column_tests: dict[str, ColumnTest] = Field(default_factory=dict)  # per column; others: Evidently's defaults


class ArtefactLink(_Strict):
    """A human artefact an RMF subcategory needs (policy, roles, risk tolerance...): a URL, or a file
    whose sha256 the audit report checks."""
    url: str | None = None
    file: Path | None = None
    sha256: str | None = None
    title: str | None = None

    @field_validator("url")
    @classmethod
    def _no_credentials(cls, url: str | None) -> str | None:
        return refuse_credentials(url, "url", "link a page that needs no token in its address")

    @model_validator(mode="after")
    def _one_target(self) -> ArtefactLink:
        if (self.url is None) == (self.file is None):
            raise ValueError("give exactly one of url or file")
        return self


class GovernanceSpec(_Strict):
    # Trusted Ed25519 public keys (base64). When set, `audit verify` requires the root to be signed by one.
    public_keys: list[str] = Field(default_factory=list)
    chain_dir: Path | None = None  # the model chains; None: <state folder>/chains
    separation_of_duties: bool = True  # an approver may not promote a version whose run they started
    artefacts: dict[str, ArtefactLink] = Field(default_factory=dict)  # keyed by RMF subcategory, e.g. "GOVERN 1.2"

    @model_validator(mode="after")
    def _known_subcategories(self) -> GovernanceSpec:
        unknown = sorted(set(self.artefacts) - set(by_id()))
        if unknown:
            raise ValueError(f"artefacts: {unknown[0]!r} is not an AI RMF 1.0 subcategory ID (e.g. 'GOVERN 1.2')")
        return self


class Config(_Strict):
    dataset: DatasetSpec
    split: SplitSpec = Field(default_factory=SplitSpec)
    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    leakage: LeakageSpec = Field(default_factory=LeakageSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    gates: GateSpec = Field(default_factory=GateSpec)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    registry: RegistrySpec = Field(default_factory=RegistrySpec)
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec)
    cluster: ClusterSpec = Field(default_factory=ClusterSpec)
    governance: GovernanceSpec = Field(default_factory=GovernanceSpec)

    @model_validator(mode="after")
    def _split_needs_columns(self) -> Config:
        if self.split.strategy == "group" and not self.dataset.entity_id:
            raise ValueError("split.strategy 'group' needs dataset.entity_id")
        if self.split.strategy == "time" and not self.dataset.timestamp:
            raise ValueError("split.strategy 'time' needs dataset.timestamp")
        return self

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI: registry.tracking_uri, else the embedded store (load_config fills it in)."""
        return self.registry.tracking_uri or embedded_tracking_uri()

    @property
    def chain_dir(self) -> Path:
        """Where the model chains live: governance.chain_dir, else <state folder>/chains."""
        return self.governance.chain_dir or state_dir() / "chains"

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> Config:
        return cls.model_validate_json(text)

    def digest(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _error_line(path: Path, err: ValidationError) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":  # a typo in a key: name the key it was probably meant to be
        msg += _did_you_mean(first["loc"])
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{path}: {key}: {msg}{more}"


def _did_you_mean(loc: tuple) -> str:
    import difflib

    model: type[BaseModel] | None = Config
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) if model is not None else None
        annotation = field.annotation if field is not None else None
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    if model is None:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(model.model_fields)}"


def load_config(path: str | Path) -> Config:
    """Read, validate and resolve a YAML config; any problem raises ConfigError with one line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    raw = bounded_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_error_line(path, exc)) from exc
    if not config.registry.model_name:
        config.registry.model_name = path.stem
    return resolve(config, path.parent)


def resolve(config: Config, base: Path) -> Config:
    """Absolute paths and a concrete tracking URI, so every step sees the same thing."""
    base = base.resolve()
    data = config.model_copy(deep=True)
    if isinstance(data.dataset.path, Path):
        data.dataset.path = (base / data.dataset.path).resolve()
    if data.validation.suite is not None:
        data.validation.suite = (base / data.validation.suite).resolve()
    if data.training.checkpoint_dir is not None:
        data.training.checkpoint_dir = (base / data.training.checkpoint_dir).resolve()
    if not data.registry.model_name:  # a config built in code, with no file to name it after
        data.registry.model_name = "govtrain-model"
    if data.registry.tracking_uri is None:
        data.registry.tracking_uri = embedded_tracking_uri()
    if data.evaluation.ood_data is not None:
        data.evaluation.ood_data = (base / data.evaluation.ood_data).resolve()
    if data.governance.chain_dir is None:
        data.governance.chain_dir = state_dir() / "chains"
    data.governance.chain_dir = (base / data.governance.chain_dir).resolve()
    for link in data.governance.artefacts.values():
        if link.file is not None:
            link.file = (base / link.file).resolve()
    return data
