"""The wheel the cluster image installs holds every package: built from a copy of the tracked files,
installed into a folder of its own, and imported from there with the checkout off the path (and the
editable install's finder unloaded: `python -S` reads no .pth file)."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def named_by_components() -> set[str]:
    """Every govtrain module a KFP component body or the training worker's command names."""
    names = {"govtrain.components.train.worker", "govtrain.pipelines.cli"}
    for source in (ROOT / "govtrain" / "components" / "ops.py", ROOT / "govtrain" / "monitoring" / "pipeline.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("govtrain"):
                names.add(node.module)
    return names


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    source = work / "src"
    for name in tracked:
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(work / "dist"), str(source)], check=True, capture_output=True)
    wheel = next((work / "dist").glob("govtrain-*.whl"))
    target = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                    str(wheel)], check=True, capture_output=True)
    return target


def run_outside(target: Path, *args: str) -> subprocess.CompletedProcess:
    """Python with only the installed wheel and the dependencies on its path, in a folder far from the checkout."""
    env = {"PYTHONPATH": f"{target}:{sysconfig.get_paths()['purelib']}", "PATH": "/usr/bin:/bin",
           "HOME": str(target), "MPLCONFIGDIR": str(target / ".mpl")}
    return subprocess.run([sys.executable, "-S", *args], cwd=target, env=env, capture_output=True, text=True,
                          timeout=300)


def test_pyproject_lists_every_package_on_disk():
    """A package added without its line in pyproject would be missing from the cluster image."""
    import tomllib

    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "govtrain").rglob("__init__.py")}
    assert sorted(listed) == sorted(on_disk)


@pytest.mark.slow  # builds and installs the wheel
def test_the_wheel_holds_every_package_and_its_data(installed):
    packages = {p.parent.relative_to(ROOT).as_posix() for p in (ROOT / "govtrain").rglob("__init__.py")}
    wheel = next(installed.parent.glob("dist/govtrain-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"{p}/__init__.py" for p in packages} <= names
    assert "govtrain/core/rmf_catalogue.yaml" in names


@pytest.mark.slow  # builds and installs the wheel
def test_every_module_a_component_names_imports_from_the_wheel_alone(installed):
    modules = sorted(named_by_components())
    assert "govtrain.components.leakage" in modules and "govtrain.components.evaluation" in modules
    script = ("import importlib, sys\n"
              f"for name in {modules!r}:\n"
              "    module = importlib.import_module(name)\n"
              f"    assert module.__file__.startswith({str(installed)!r}), (name, module.__file__)\n"
              "from govtrain.core.catalogue import subcategories\n"
              "print(len(subcategories()))\n")
    result = run_outside(installed, "-c", script)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split()[-1]) > 60  # the packaged catalogue loads


@pytest.mark.slow  # builds and installs the wheel
def test_govtrain_help_runs_from_the_wheel(installed):
    result = run_outside(installed, str(installed / "bin" / "govtrain"), "--help")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "audit" in result.stdout and "run" in result.stdout
    worker = run_outside(installed, "-m", "govtrain.components.train.worker", "--help")
    assert worker.returncode == 0 and "--job" in worker.stdout, worker.stderr[-2000:]


@pytest.mark.slow  # builds and installs the wheel
def test_the_cluster_entrypoints_run_from_the_wheel(installed):
    """What runs in the cluster image without the checkout: both training-job builders and the launcher,
    the deploy renderer, and the MLflow set-up commands."""
    shutil.copy(ROOT / "configs" / "cluster.yaml", installed / "cluster.yaml")
    script = ("import json, govtrain\n"
              "from govtrain.core.config import load_config\n"
              "from govtrain.components.train.pytorchjob import build_pytorchjob\n"
              "from govtrain.components.train.trainjob import build_trainjob\n"
              "from govtrain.components.train.launcher import JobLauncher\n"
              "from govtrain.pipelines.deploy import build_inference_service\n"
              "config = load_config('cluster.yaml')\n"
              "jobs = [build_pytorchjob(config, 'r1', None), build_trainjob(config, 'r1', None)]\n"
              f"assert govtrain.__file__.startswith({str(installed)!r}), govtrain.__file__\n"
              "print(json.dumps([j['kind'] for j in jobs]))\n")
    result = run_outside(installed, "-c", script)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == '["PyTorchJob", "TrainJob"]'
    for command in (["mlflow", "--help"], ["deploy", "--help"]):
        help_text = run_outside(installed, str(installed / "bin" / "govtrain"), *command)
        assert help_text.returncode == 0, help_text.stderr[-2000:]
