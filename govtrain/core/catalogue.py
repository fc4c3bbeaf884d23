"""The NIST AI RMF 1.0 catalogue (rmf_catalogue.yaml): data, not code."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

CATALOGUE = Path(__file__).with_name("rmf_catalogue.yaml")


@dataclass(frozen=True)
class Subcategory:
    id: str
    function: str
    category: str
    title: str
    evidence: tuple[str, ...] = field(default_factory=tuple)  # pipeline steps that can evidence it
    human: str | None = None  # the human artefact it needs otherwise


@lru_cache(maxsize=1)
def subcategories() -> tuple[Subcategory, ...]:
    data = yaml.safe_load(CATALOGUE.read_text())
    out = []
    for function, fdata in data["functions"].items():
        for category, cdata in fdata["categories"].items():
            for sid, sdata in cdata["subcategories"].items():
                out.append(Subcategory(sid, function, category, sdata["title"], tuple(sdata.get("evidence", [])),
                                       sdata.get("human")))
    return tuple(out)


def by_id() -> dict[str, Subcategory]:
    return {s.id: s for s in subcategories()}


def function_titles() -> dict[str, str]:
    return {name: f["title"] for name, f in yaml.safe_load(CATALOGUE.read_text())["functions"].items()}
