"""The layers are the architecture: invariant_aggregator <- linear_theory <- deep_experiments <- figures <-
paper_checks.

import-linter checks every import statement (function-level ones included) against the
``layers`` contract in pyproject.toml; CI also runs ``lint-imports`` on its own.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_no_package_imports_a_layer_above_it(capsys):
    from importlinter.cli import lint_imports

    cwd = os.getcwd()
    os.chdir(ROOT)  # import-linter resolves the packages from the working directory
    try:
        code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    finally:
        os.chdir(cwd)
    assert code == 0, capsys.readouterr().out


def test_the_core_holds_no_paper_content():
    core = {p.stem for p in (ROOT / "invariant_aggregator").rglob("*.py")}
    assert "failure_modes" not in core and "__main__" not in core


@pytest.mark.parametrize("package", ["deep_experiments", "figures", "paper_checks"])
def test_only_the_cli_parses_arguments(package):
    parsers = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / package).rglob("*.py")
        if "argparse" in p.read_text(encoding="utf-8") and p.name != "cli.py"
    ]
    assert parsers == []


def test_the_core_and_the_experiments_import_without_the_optional_extras():
    """Flower and Ray are optional: without them the core, the experiments and the grid's local
    executor import, and the Flower modules say how to install what they need."""
    code = (
        "import sys; sys.modules['flwr'] = None; sys.modules['ray'] = None\n"
        "import invariant_aggregator as ia, deep_experiments, paper_checks\n"
        "from deep_experiments import grid; assert ia.make('invariant')\n"
        "for name in ('invariant_aggregator.flower', 'deep_experiments.flower_app'):\n"
        "    try:\n        __import__(name)\n    except ImportError as e:\n        print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.count("pip install 'invariant-aggregator[flower]'") == 2
