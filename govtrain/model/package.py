"""What a logged model carries so it serves where govtrain is not installed (MLServer in KServe,
`mlflow models serve` in a fresh env): the network's own code, exact requirements, and an input example
from which MLflow derives the signature."""
from __future__ import annotations

import shutil
from importlib.metadata import version
from pathlib import Path

import pandas as pd

# What model/ imports at serving time (mlflow pins itself); exact versions of this environment.
SERVING_PACKAGES = ("torch", "safetensors", "pandas", "numpy")


def pinned_requirements() -> list[str]:
    """name==version for every serving package; a local label (torch 2.13.0+cpu) is dropped, since an
    index serves the public release under the plain version."""
    return [f"{name}=={version(name).split('+')[0]}" for name in SERVING_PACKAGES]


def code_package(dest: Path) -> Path:
    """A minimal `govtrain` package holding only model/ (it imports nothing else of the project), for
    MLflow's code_paths: the served model imports govtrain.model from it."""
    source = Path(__file__).parent
    root = dest / "govtrain"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(source, root / "model", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (root / "__init__.py").write_text('"""govtrain.model only, as shipped inside a logged MLflow model."""\n')
    return root


def factory_code(reference: str, dest: Path) -> Path:
    """A user's network factory ("package.module:function") for code_paths, under its own dotted name: the
    module's file, with each enclosing package's __init__.py. What else it imports must be a public package
    (torch, numpy...) or in that file: the served model carries nothing more of the user's code."""
    import importlib

    module_name = reference.partition(":")[0]
    parts = module_name.split(".")
    root = dest / "factory"
    shutil.rmtree(root, ignore_errors=True)
    folder = root
    for depth in range(1, len(parts)):
        folder = folder / parts[depth - 1]
        folder.mkdir(parents=True, exist_ok=True)
        package = importlib.import_module(".".join(parts[:depth]))
        init = getattr(package, "__file__", None)
        (folder / "__init__.py").write_text(Path(init).read_text() if init else "")
    source = importlib.import_module(module_name).__file__
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(str(source), folder / f"{parts[-1]}.py")
    return root


def input_example(train: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """One synthetic row in the training columns and dtypes: each numeric's median and each category's
    most frequent value. Aggregates, not a person's row, since the example is stored with the model."""
    row = {c: [train[c].median()] for c in numeric}
    row.update({c: [train[c].mode(dropna=True).iloc[0] if train[c].notna().any() else None] for c in categorical})
    example = pd.DataFrame(row)
    for column in [*numeric, *categorical]:
        if train[column].notna().any():
            example[column] = example[column].astype(train[column].dtype)
    return example
