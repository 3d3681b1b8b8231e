"""Errors of the experiment layer: each names the problem and the ways to fix it."""

from __future__ import annotations


class ExperimentError(ValueError):
    """A bad configuration, a malformed data file or a run that cannot continue."""


class DataMissing(ExperimentError, FileNotFoundError):
    """A data set is not where the run looked for it."""

    def __init__(self, what: str, expected: list[str], searched: list, fixes: list[str]):
        self.what, self.expected, self.searched, self.fixes = what, expected, [str(s) for s in searched], fixes
        lines = [
            f"{what} not found.",
            f"  expected: {', '.join(expected)}",
            f"  searched: {', '.join(self.searched) if self.searched else '(no path given)'}",
            "  fix it by one of:",
            *(f"    - {fix}" for fix in fixes),
        ]
        super().__init__("\n".join(lines))
