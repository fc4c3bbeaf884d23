"""The NIST AI RMF 1.0 catalogue (rmf_catalogue.yaml): data, not code, loaded through a strict typed
model so a malformed entry (a stray key, a missing title) fails at load instead of printing half a
sentence in the audit report."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

CATALOGUE = Path(__file__).with_name("rmf_catalogue.yaml")
FUNCTIONS = ("GOVERN", "MAP", "MEASURE", "MANAGE")
# The pipeline steps whose records can carry a subcategory (governance/rmf.py says which do).
STEPS = frozenset({"prepare", "validate", "leakage", "data_gate", "train", "evaluate", "register", "seal", "drift",
                   "promote", "rollback"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SubcategoryEntry(_Strict):
    title: str = Field(min_length=10)
    evidence: list[str] = Field(default_factory=list)  # pipeline steps that can evidence it
    human: str | None = None  # the human artefact it needs otherwise

    @model_validator(mode="after")
    def _evidenced_somehow(self) -> SubcategoryEntry:
        if not self.evidence and not self.human:
            raise ValueError("needs evidence steps or a human artefact")
        unknown = sorted(set(self.evidence) - STEPS)
        if unknown:
            raise ValueError(f"evidence names unknown step {unknown[0]!r}")
        return self


class CategoryEntry(_Strict):
    title: str = Field(min_length=10)
    subcategories: dict[str, SubcategoryEntry]


class FunctionEntry(_Strict):
    title: str = Field(min_length=10)
    categories: dict[str, CategoryEntry]


class Catalogue(_Strict):
    functions: dict[str, FunctionEntry]

    @model_validator(mode="after")
    def _numbered_as_nist(self) -> Catalogue:
        if tuple(self.functions) != FUNCTIONS:
            raise ValueError(f"functions must be {', '.join(FUNCTIONS)} in that order")
        for name, function in self.functions.items():
            for cid, category in function.categories.items():
                if not re.fullmatch(rf"{name} \d+", cid):
                    raise ValueError(f"category {cid!r} is not numbered as {name} N")
                for sid in category.subcategories:
                    if not re.fullmatch(rf"{cid}\.\d+", sid):
                        raise ValueError(f"subcategory {sid!r} is not numbered as {cid}.N")
        return self


@dataclass(frozen=True)
class Subcategory:
    id: str
    function: str
    category: str
    title: str
    evidence: tuple[str, ...] = field(default_factory=tuple)
    human: str | None = None


def load(path: Path = CATALOGUE) -> Catalogue:
    return Catalogue.model_validate(yaml.safe_load(path.read_text()))


@lru_cache(maxsize=1)
def catalogue() -> Catalogue:
    """The packaged catalogue, read and validated once per process."""
    return load()


@lru_cache(maxsize=1)
def subcategories() -> tuple[Subcategory, ...]:
    return tuple(Subcategory(sid, fname, cid, sub.title, tuple(sub.evidence), sub.human)
                 for fname, function in catalogue().functions.items()
                 for cid, category in function.categories.items()
                 for sid, sub in category.subcategories.items())


def by_id() -> dict[str, Subcategory]:
    return {s.id: s for s in subcategories()}


def function_titles() -> dict[str, str]:
    return {name: f.title for name, f in catalogue().functions.items()}
