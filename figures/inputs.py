"""Reading result files: the only way a figure gets its numbers."""

from __future__ import annotations

import json
from pathlib import Path


class InputMissing(FileNotFoundError):
    """A figure's result file is not in the results folder."""


def read_json(results, name: str):
    path = Path(results) / name
    if not path.is_file():
        raise InputMissing(f"{name} is not in {results}")
    return json.loads(path.read_text(encoding="utf-8"))


def theory_records(results, claim: str) -> list[dict]:
    records = [r for r in read_json(results, "linear_theory.json") if r["claim"] == claim]
    if not records:
        raise InputMissing(f"linear_theory.json in {results} has no {claim} records")
    return records


def per_task(results, suffix: str, tasks=("spambase", "phishing")) -> dict[str, list[dict]]:
    """{task: rows} of ``TASK-SUFFIX`` for the tasks that have one (at least one)."""
    found = {}
    for task in tasks:
        try:
            found[task] = read_json(results, f"{task}-{suffix}")
        except InputMissing:
            continue
    if not found:
        raise InputMissing(f"no {' or '.join(f'{t}-{suffix}' for t in tasks)} in {results}")
    return found


def tables(results, stage: str, tasks=("spambase", "phishing")) -> dict[str, list[dict]]:
    """{task: rows} of ``TASK-STAGE.table.json`` for the tasks that have one (at least one)."""
    return per_task(results, f"{stage}.table.json", tasks)


def value(x) -> float:
    """A JSON number (non-finite values are stored as strings)."""
    return float(x)
