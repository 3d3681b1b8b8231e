"""The results a check reads: one results folder (``RESULTS/``), file names as in
:mod:`paper_checks.plan` (and ``benchmarks/tabular-results``). A file that is absent reads as
None, and :meth:`Evidence.why_missing` says why (left out by the plan, data or hardware missing,
or simply not there), so a claim can report ``not run`` with the reason."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path


class Evidence:
    def __init__(self, results):
        self.results = Path(results)

    @cache  # noqa: B019  (one Evidence per report; the files do not change while it reads them)
    def _json(self, name: str):
        path = self.results / name
        if not path.is_file():
            return None
        return json.loads(path.read_text(encoding="utf-8"))

    def theory(self) -> list[dict] | None:
        """linear_theory's records."""
        return self._json("linear_theory.json")

    def table(self, task: str, stage: str) -> list[dict] | None:
        """Rows of ``TASK-STAGE.table.json`` (stage: small, small-literal, sensitivity, ablation, paper)."""
        return self._json(f"{task}-{stage}.table.json")

    def attacks(self, task: str) -> list[dict] | None:
        """Rows of the attack x defence matrix (``TASK-attacks.attacks.json``)."""
        return self._json(f"{task}-attacks.attacks.json")

    def mechanism(self, task: str) -> list[dict] | None:
        return self._json(f"{task}-mechanism.mechanism.json")

    def plan(self) -> dict:
        return self._json("plan.json") or {}

    def why_missing(self, name: str) -> str:
        """Why the results of ``name`` (a stage name such as ``spambase-small-literal``) are
        absent or partial, from the plan: data or hardware missing, or left out by its level."""
        plan = self.plan()
        task = name.split("-")[0]
        missing, left_out = plan.get("missing", {}), plan.get("left_out", {})
        for key in (name, task):
            if key in missing:
                return f"cannot run here: {missing[key]}"
        if name in left_out:
            return f"left out by the {plan.get('level')} plan: {left_out[name]}"
        if name.endswith("-paper") and "paper" in left_out:
            return f"left out by the {plan.get('level')} plan: {left_out['paper']}"
        if plan:
            return f"{name}: not in this plan ({plan.get('level', '?')} level, or not selected by --only)"
        return f"{name}: no results file in {self.results}"
