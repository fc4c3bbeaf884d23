"""The leakage checks' settings: one LeakCheck per check (run it or not, its threshold, whether it gates),
part of the typed configuration in config.py."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LeakCheck(_Strict):
    """One leakage check: run it or not, its threshold, and whether failing it fails the data gate."""
    enabled: bool = True
    threshold: float = Field(0.0, ge=0)  # the largest value that passes (a fraction unless the check says otherwise)
    gate: bool = True


class TwinCheck(LeakCheck):
    """Rows of a later split with a twin in an earlier one. The gate is on the effect: the share of rows a
    memorising model could answer from memory may exceed what chance makes (the columns' own value
    frequencies: a table of few discrete columns has twins everywhere) by this margin. 3 identical loan
    applications in 2,381 rows pass; 10% copied rows do not."""
    threshold: float = Field(0.02, ge=0, le=1)


class NearDuplicateCheck(TwinCheck):
    # Near: same categorical/text values after trimming and case-folding, and every numeric within
    # tolerance x that column's train standard deviation. Exact duplicates are counted by their own check.
    tolerance: float = Field(0.01, gt=0)
    tables: int = Field(4, ge=1, le=16)  # random-shift grid hash tables (more: higher recall, slower)
    cell_width: float = Field(8.0, gt=1)  # grid cell, in tolerances (wider: higher recall, more candidates)


class TemporalCheck(LeakCheck):
    min_gap: str = "0s"  # val/test rows must be dated after the newest train row plus this (pandas Timedelta)
    always: bool = False  # also for random/group splits (by default only split.strategy "time")

    @model_validator(mode="after")
    def _gap_parses(self) -> TemporalCheck:
        import pandas as pd

        try:
            pd.Timedelta(self.min_gap)
        except ValueError as exc:
            raise ValueError(f"min_gap {self.min_gap!r} is not a duration like '0s', '7D' or '12h'") from exc
        return self


class TargetCheck(LeakCheck):
    # Classification: the best single-feature ROC AUC that passes, when a person sets one. None: a feature is a
    # leak when it reaches auc_floor and makes error_ratio times fewer ranking errors (1 - AUC) than the rest of
    # the table together, for the same class, out of fold: iris's petal length singles out setosa (AUC 1.0), but
    # so do the other columns; the penguins' bill length (0.9885 against 0.9553) is strong, not a copy; a
    # column recorded after the outcome (AIDS deaths: 0.9987 against 0.8513) is (docs/decisions.md 51)
    threshold: float | None = Field(None, gt=0.5, le=1)  # type: ignore[assignment]  # None: by reference
    auc_floor: float = Field(0.98, gt=0.5, le=1)
    error_ratio: float = Field(10.0, gt=1)
    # classification: one numeric feature reconstructs every class (balanced accuracy of a one-feature nearest
    # neighbour, leave one out): a copy of the label scores 1
    max_whole_label: float = Field(0.99, gt=0, le=1)
    max_single_feature_r2: float = Field(0.95, gt=0, le=1)  # regression: the best single-feature R^2 that passes
    max_category_determinism: float = Field(0.8, gt=0, le=1)  # uncertainty coefficient U(label | category)
    # regression: |Spearman rho| of one feature with the target (any monotone map of it, e.g. its log)
    max_rank_correlation: float = Field(0.99, gt=0, le=1)
    # regression: out-of-sample R^2 of two features together (sum, difference, product, ratio of the target)
    max_pair_r2: float = Field(0.999, gt=0, le=1)
    min_category_rows: int = Field(30, ge=1)  # rarer categories are pooled, so ids cannot look predictive


class ClassBalanceCheck(LeakCheck):
    threshold: float = Field(0.1, ge=0, le=1)  # largest gap in positive rate between two splits


class UnseenCategoriesCheck(LeakCheck):
    # share of val/test rows with a category train never saw, beyond what a random split of this table makes
    # (Good-Turing: categories train holds once / train rows, its 99% binomial bound on the split): a coverage
    # gap the score does not speak for, not a leak, so its columns and values are named
    threshold: float = Field(0.05, ge=0, le=1)


class TrainConflictsCheck(LeakCheck):
    threshold: float = Field(0.01, ge=0, le=1)  # share of train rows sharing features with a differing label
    gate: bool = False  # a poisoning signal: reported, gated only when asked


class LabelErrorCheck(LeakCheck):
    threshold: float = Field(0.02, ge=0, le=1)  # share of sampled train rows flagged
    gate: bool = False  # a poisoning signal: reported, gated only when asked
    confidence: float = Field(0.95, gt=0.5, lt=1)  # flagged: the model gives the row's label below 1 - confidence
    folds: int = Field(3, ge=2)


class LeakageSpec(_Strict):
    """The leakage checks of the data gate; each reports counts, ratios and up to 20 examples."""
    sample_rows: int = Field(20000, gt=100)  # train rows the model-based checks (target, label errors) use
    exact_duplicates: TwinCheck = Field(default_factory=TwinCheck)  # share of a later split's rows in an earlier one
    # same features, other label, across splits: noise that lowers a test score rather than inflating it, so
    # reported and gated only when asked
    conflicting_labels: TwinCheck = Field(default_factory=lambda: TwinCheck(gate=False))
    near_duplicates: NearDuplicateCheck = Field(default_factory=NearDuplicateCheck)
    entity_overlap: LeakCheck = Field(default_factory=LeakCheck)  # entity ids present in two splits (a count)
    temporal: TemporalCheck = Field(default_factory=TemporalCheck)  # share of val/test rows dated too early
    target: TargetCheck = Field(default_factory=TargetCheck)
    class_balance: ClassBalanceCheck = Field(default_factory=ClassBalanceCheck)
    unseen_categories: UnseenCategoriesCheck = Field(default_factory=UnseenCategoriesCheck)
    train_conflicts: TrainConflictsCheck = Field(default_factory=TrainConflictsCheck)
    label_errors: LabelErrorCheck = Field(default_factory=LabelErrorCheck)
