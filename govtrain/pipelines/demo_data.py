"""A deterministic synthetic credit-risk table, a drifted "current" batch, and planted leaks.

The label depends non-linearly on several features (a threshold on debt-to-income, an interaction
of credit score and utilisation, a U-shape in age), so a linear model cannot get it all and an MLP can.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

NUMERIC = ["age", "income", "loan_amount", "loan_term_months", "credit_score", "debt_to_income",
           "utilization", "open_accounts", "delinquencies_2y", "months_employed"]
CATEGORICAL = ["home_ownership", "purpose", "employment_type", "region"]
SENSITIVE = ["gender"]
TARGET = "default"
ENTITY = "customer_id"
TIMESTAMP = "application_date"
LEAK_COLUMN = "collections_flag"

_PURPOSES = ["debt_consolidation", "credit_card", "home_improvement", "car", "medical", "small_business"]


@dataclass
class DemoFiles:
    data: Path
    current: Path
    rows: int
    current_rows: int


def _table(rows: int, rng: np.random.Generator, drift: float) -> pd.DataFrame:
    customers = max(rows // 3, 1)
    customer = rng.integers(0, customers, rows)
    # Per-customer traits stay the same across that customer's applications.
    base_age = rng.integers(19, 76, customers)
    base_income = rng.lognormal(10.8, 0.5, customers)
    gender = rng.choice(["female", "male", "nonbinary"], customers, p=[0.49, 0.49, 0.02])
    region = rng.choice(["north", "south", "east", "west"], customers, p=[0.3, 0.25, 0.25, 0.2])

    income = base_income[customer] * rng.lognormal(0, 0.1, rows) * (1 - 0.25 * drift)
    age = np.clip(base_age[customer] + rng.integers(0, 3, rows), 18, 80).astype(float)
    loan_amount = np.round(rng.lognormal(9.3, 0.7, rows) * (1 + 0.5 * drift), 2)
    term = rng.choice([12, 24, 36, 48, 60, 72], rows).astype(float)
    credit_score = np.clip(rng.normal(680 - 60 * drift, 70, rows), 300, 850).round()
    dti = np.clip(loan_amount / income * 2.5 + rng.normal(0.15, 0.08, rows), 0, 2).round(4)
    utilization = np.clip(rng.beta(2 + 2 * drift, 3, rows), 0, 1).round(4)
    open_accounts = rng.poisson(5 + 2 * drift, rows).astype(float)
    delinquencies = rng.poisson(0.3 + 0.4 * drift, rows).astype(float)
    months_employed = np.clip(rng.exponential(60, rows), 0, 480).round()
    purpose_p = np.array([0.35, 0.2, 0.15, 0.12, 0.08, 0.1])
    purpose_p = (1 - drift) * purpose_p + drift * np.array([0.1, 0.1, 0.1, 0.1, 0.3, 0.3])
    purpose = rng.choice(_PURPOSES, rows, p=purpose_p / purpose_p.sum())
    home = rng.choice(["RENT", "OWN", "MORTGAGE"], rows, p=[0.4, 0.15, 0.45])
    employment = rng.choice(["salaried", "self_employed", "contract", "unemployed"], rows, p=[0.6, 0.2, 0.15, 0.05])

    logit = (
        -2.9
        + 1.6 * (dti > 0.45)
        + 2.5 * ((credit_score < 640) & (utilization > 0.5))
        - 0.004 * (credit_score - 680)
        + 0.0012 * (age - 45) ** 2 / 10
        + 0.55 * delinquencies
        + 0.8 * (employment == "unemployed")
        + 0.5 * np.isin(purpose, ["small_business", "medical"])
        - 0.3 * (home == "OWN")
        + 0.004 * (term - 36)
        - 0.002 * months_employed
    )
    label = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)

    start = np.datetime64("2023-01-01T00:00:00")
    seconds = np.sort(rng.integers(0, 2 * 365 * 86400, rows))
    frame = pd.DataFrame({
        ENTITY: np.char.add("C", np.char.zfill(customer.astype(str), 7)),
        TIMESTAMP: start + seconds.astype("timedelta64[s]"),
        "age": age, "income": income.round(2), "loan_amount": loan_amount, "loan_term_months": term,
        "credit_score": credit_score, "debt_to_income": dti, "utilization": utilization,
        "open_accounts": open_accounts, "delinquencies_2y": delinquencies, "months_employed": months_employed,
        "home_ownership": home, "purpose": purpose, "employment_type": employment,
        "region": region[customer], "gender": gender[customer], TARGET: label,
    })
    # Realistic gaps: income and tenure are often unreported, a few bureau scores are missing.
    for column, rate in (("income", 0.03), ("months_employed", 0.05), ("credit_score", 0.01)):
        frame.loc[rng.random(rows) < rate, column] = np.nan
    return frame


def plant_duplicates(frame: pd.DataFrame, count: int, rng: np.random.Generator) -> pd.DataFrame:
    """Copy rows under new customer ids and dates, so an id check misses them and a row hash does not."""
    picked = frame.iloc[rng.choice(len(frame), count, replace=False)].copy()
    picked[ENTITY] = [f"X{i:07d}" for i in range(count)]
    picked[TIMESTAMP] = picked[TIMESTAMP] + pd.Timedelta(days=1)
    return pd.concat([frame, picked], ignore_index=True)


def plant_target_column(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """A column recorded after the outcome (sent to collections), nearly equal to the label."""
    flip = rng.random(len(frame)) < 0.01
    frame[LEAK_COLUMN] = np.where(flip, 1 - frame[TARGET], frame[TARGET]).astype(float)
    return frame


def write_demo_data(out_dir: str | Path, rows: int = 100_000, *, seed: int = 7, drift: float = 0.6,
                    current_rows: int | None = None, fmt: str = "parquet", leak_duplicates: int = 0,
                    leak_target: bool = False) -> DemoFiles:
    if rows < 100:
        raise ValueError(f"--rows must be at least 100, got {rows}")
    if not 0 <= drift <= 1:
        raise ValueError(f"--drift must be between 0 and 1, got {drift}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    frame = _table(rows, rng, drift=0.0)
    if leak_duplicates:
        frame = plant_duplicates(frame, leak_duplicates, rng)
    if leak_target:
        frame = plant_target_column(frame, rng)
    current = _table(current_rows or max(rows // 5, 100), np.random.default_rng(seed + 1), drift=drift)
    suffix = ".csv" if fmt == "csv" else ".parquet"
    data_path, current_path = out / f"credit{suffix}", out / f"current{suffix}"
    for table, path in ((frame, data_path), (current, current_path)):
        if fmt == "csv":
            table.to_csv(path, index=False)
        else:
            table.to_parquet(path, index=False)
    return DemoFiles(data_path, current_path, len(frame), len(current))
