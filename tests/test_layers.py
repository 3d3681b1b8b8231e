"""The layers are the architecture: invariant_aggregator <- linear_theory <- deep_experiments <- figures <-
paper_checks.

import-linter checks every import statement (function-level ones included) against the
``layers`` contract in pyproject.toml; CI also runs ``lint-imports`` on its own.
"""

import os
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
