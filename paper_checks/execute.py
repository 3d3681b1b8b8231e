"""Carry out a :class:`~paper_checks.plan.Plan`: the theory sweep, then every training run as one
grid (:func:`deep_experiments.grid.run_grid`: ``jobs`` worker processes with one torch thread
each, or Ray tasks), then each stage's results file.

Nothing is redone that is done: a finished run of the identical configuration is reused, an
interrupted run resumes from its checkpoint, the theory sweep keeps each finished family in
``CACHE/linear_theory/``. A run that fails is tried again (``retries``), then reported with its
error (its stage's results then hold the runs that finished); the other runs go on.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from deep_experiments import attack_matrix, studies
from deep_experiments.api import table1_rows
from deep_experiments.grid import run_grid
from invariant_aggregator import write_json_atomic

from .plan import Plan, Stage


def _theory(stage: Stage, plan: Plan, results: Path, cache: Path) -> None:
    from linear_theory.sweep import run_sweep

    records, _ = run_sweep(
        quick=plan.settings["theory_grid"] == "quick", seed=0, checkpoint=cache / "linear_theory", progress=False
    )
    write_json_atomic(results / stage.result_file, records)


def finish_stage(stage: Stage, results: Path) -> None:
    """Write the stage's results files from its finished runs (exactly the planned folders):
    each is written in a temporary folder beside, then renamed into place."""
    folders = [Path(f) for _, f in stage.runs]
    with tempfile.TemporaryDirectory(dir=results, prefix=f".{stage.name}-") as tmp:
        if stage.kind == "mechanism":
            studies.mechanism_rows(folders, out=tmp)
        elif stage.kind == "attacks":
            attack_matrix.matrix_rows(folders, out=tmp)
        elif stage.kind in ("table1", "literal", "paper"):
            table1_rows(stage.task, folders, stage.skipped, out=tmp)
        else:
            studies.variant_rows(folders, out=tmp)
        for f in Path(tmp).iterdir():
            f.replace(results / f"{stage.name}.{f.name}")


def run_plan(
    plan: Plan,
    *,
    results,
    cache,
    jobs: int = 1,
    executor: str = "local",
    address: str | None = None,
    retries: int = 1,
    progress: bool = True,
    log=print,
) -> dict:
    """Carry out ``plan``; returns {"seconds", "runs", "trained", "reused", "failed": {folder: error},
    "retried": {folder: attempts}, "executor"}."""
    results, cache = Path(results), Path(cache)
    results.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for stage in plan.stages:
        if stage.kind == "theory":
            log("paper_checks: linear theory")
            _theory(stage, plan, results, cache)
    runs = [(cfg, str(folder)) for stage in plan.stages for cfg, folder in stage.runs]
    report = run_grid(
        runs,
        executor=executor,
        jobs=jobs,
        address=address,
        retries=retries,
        progress=progress,
        log=log,
        log_finished=False,  # hundreds of runs: their retries and failures only
    )
    for stage in plan.stages:
        if stage.kind != "theory":
            finish_stage(stage, results)
    for folder, error in report.failed.items():
        log(f"run failed: {folder}: {error.splitlines()[0]}")
    summary = {
        "seconds": time.perf_counter() - start,
        "runs": report.runs,
        "trained": report.trained,
        "reused": report.reused,
        "failed": report.failed,
        "retried": report.attempts,
        "executor": report.executor,
    }
    write_json_atomic(results / "plan.json", {**plan.to_dict(), "execution": summary})
    return summary
