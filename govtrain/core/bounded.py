"""Reading a YAML file within bounds: size, nesting and number of values, each a one-line error naming the
file. Configs and the operator's policy file are read through here."""
from __future__ import annotations

from pathlib import Path

import yaml


class ConfigError(ValueError):
    """A config problem, already phrased as one line naming the file and key."""


# A config is a few KB; these bound what a hostile or mistaken file can make a loader do (a YAML alias bomb
# expands in memory, deep nesting recurses). Each is a one-line error naming the file.
MAX_CONFIG_BYTES, MAX_NESTING, MAX_NODES = 1024 * 1024, 32, 100_000


def check_shape(path: Path, value: object, what: str = "config", max_nodes: int = MAX_NODES) -> None:
    """Refuse a parsed document nested deeper than MAX_NESTING or with more than MAX_NODES values."""
    nodes, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if depth > MAX_NESTING:
            raise ConfigError(f"{path}: {what} nested deeper than {MAX_NESTING} levels")
        if nodes > max_nodes:
            raise ConfigError(f"{path}: {what} holds more than {max_nodes} values (an alias bomb?)")
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children)


def bounded_yaml(path: Path, max_bytes: int = MAX_CONFIG_BYTES) -> object:
    """A YAML file read within bounds (size, nesting, values), any problem one ConfigError line."""
    size = path.stat().st_size
    if size > max_bytes:
        raise ConfigError(f"{path}: {size} bytes; a config may be at most {max_bytes} bytes")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} not valid YAML") from exc
    except RecursionError:
        raise ConfigError(f"{path}: nested deeper than the YAML reader allows") from None
    check_shape(path, raw)
    return raw


