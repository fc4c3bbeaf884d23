"""The README's config reference and the config model agree: every documented key is accepted and
every accepted key is documented.

The README block is a compact notation: `section: {key, key: {nested, ...}, ...}`; `a | b: {...}` gives
a and b the same shape; `<placeholder>` or `"<placeholder>"` stands for the keys of a dict field; text in
(parentheses) and after # is commentary, and a value that is not {...} (a type, choices, a list) is a leaf.
"""
from __future__ import annotations

import re
import types
import typing
from pathlib import Path

from pydantic import BaseModel

from govtrain.core.config import Config

README = Path(__file__).resolve().parents[1] / "README.md"


def config_block() -> str:
    text = README.read_text()
    start = text.index("```yaml", text.index("## The config")) + len("```yaml")
    return text[start:text.index("```", start)]


def split_top(text: str) -> list[str]:
    """Split at commas outside braces and brackets."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char in "{[" and 1 or char in "}]" and -1 or 0
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [p.strip() for p in [*parts, current] if p.strip()]


def parse(text: str) -> dict[str, dict | None]:
    """{key: nested keys or None (a leaf)} from the inside of one {...}."""
    out: dict[str, dict | None] = {}
    for item in split_top(text):
        if item == "...":
            continue
        names, _, value = item.partition(":")
        value = value.strip()
        nested = parse(value[1:value.rindex("}")]) if value.startswith("{") else None
        for name in names.split("|"):
            out[name.strip().strip('"')] = nested
    return out


def documented() -> dict[str, dict | None]:
    lines = [re.sub(r"#.*", "", line) for line in config_block().splitlines()]
    text = re.sub(r"\([^()]*\)", "", " ".join(lines))  # commentary in parentheses
    sections = re.findall(r"(\w+):\s*(\{.*?\})(?=\s+\w+:\s*\{|\s*$)", text)
    return {name: parse(body[1:-1]) for name, body in sections}


def model_of(annotation: typing.Any) -> tuple[type[BaseModel] | None, bool]:
    """(the pydantic model inside an annotation, whether it sits in a dict's values)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = model_of(arg)
            if found[0] is not None:
                return found
        return None, False
    if origin is dict:
        return model_of(typing.get_args(annotation)[1])[0], True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    return None, False


def accepted(model: type[BaseModel]) -> dict[str, dict | None]:
    out: dict[str, dict | None] = {}
    for name, field in model.model_fields.items():
        inner, in_dict = model_of(field.annotation)
        keys = accepted(inner) if inner is not None else None
        out[name] = {"<key>": keys} if in_dict and inner is not None else keys
    return out


def normalise(tree: dict[str, dict | None] | None) -> dict | None:
    """Placeholders (<check>, <RMF id>, column) become <key>."""
    if tree is None or all(k.startswith("<") and v is None for k, v in tree.items()):
        return None  # a dict of plain values, e.g. {<field>: text}, is a leaf
    return {("<key>" if k.startswith("<") or k == "column" else k): normalise(v) for k, v in tree.items()}


def flatten(tree: dict | None, prefix: str = "") -> set[str]:
    if tree is None:
        return set()
    return {f"{prefix}{k}" for k in tree} | {p for k, v in tree.items() for p in flatten(v, f"{prefix}{k}.")}


def test_every_documented_key_is_accepted_and_every_accepted_key_is_documented():
    ours, model = flatten(normalise(documented())), flatten(accepted(Config))
    assert sorted(ours - model) == [], "documented in README but refused by the config model"
    assert sorted(model - ours) == [], "accepted by the config model but not in the README"


def test_the_checker_sees_a_key_the_model_refuses():
    tree = parse("path, format: csv|parquet, pytorchjob: {namespace, mlflow_secret}")
    assert flatten(tree) == {"path", "format", "pytorchjob", "pytorchjob.namespace", "pytorchjob.mlflow_secret"}
    assert "training.pytorchjob.mlflow_secret" not in flatten(accepted(Config))
