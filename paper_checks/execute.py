"""Carry out a :class:`~paper_checks.plan.Plan`: the theory sweep, then every training run (in
``jobs`` worker processes, one torch thread each), then each stage's results file.

Nothing is redone that is done: a finished run of the identical configuration is reused, an
interrupted run resumes from its checkpoint, the theory sweep keeps each finished family in
``CACHE/linear_theory/``. A run that fails is reported with its error (its stage's results then
hold the runs that finished); the other runs go on.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import tempfile
import time
import traceback
from pathlib import Path

from tqdm import tqdm

from deep_experiments import attack_matrix, studies
from deep_experiments import results as run_results
from deep_experiments.api import run_or_reuse, table1_rows
from invariant_aggregator import write_json_atomic

from .plan import Plan, Stage


def _use_one_thread() -> tuple[int, int]:
    """Set torch's and numba's thread counts to 1; return them as they were."""
    import numba
    import torch

    before = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    return before


@contextlib.contextmanager
def one_thread():
    """Small MLPs train fastest on one thread (torch's and numba's); the caller's settings are
    restored afterwards."""
    import numba
    import torch

    before = _use_one_thread()
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        numba.set_num_threads(before[1])


def _worker_init() -> None:
    # a worker process of ours: its settings are ours to keep. One thread each: with two
    # workers on two cores, numba's default (all cores) made runs 1.3x slower
    _use_one_thread()


def _train(cfg: dict, folder: str) -> tuple[str, str | None]:
    """One run, reused when finished: (folder, error or None)."""
    try:
        run_or_reuse(cfg, folder, progress=False)
    except Exception as exc:  # reported with the run, never lost; the other runs go on
        return folder, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
    return folder, None


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


def run_plan(plan: Plan, *, results, cache, jobs: int = 1, progress: bool = True, log=print) -> dict:
    """Carry out ``plan``; returns {"seconds", "runs", "trained", "reused", "failed": {folder: error}}."""
    results, cache = Path(results), Path(cache)
    results.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    todo = [(cfg, str(folder)) for stage in plan.stages for cfg, folder in stage.runs]
    pending = [(cfg, f) for cfg, f in todo if not run_results.is_finished(f)]
    reused = len(todo) - len(pending)
    failed: dict[str, str] = {}
    bar = tqdm(
        total=len(todo) + 1, initial=reused, desc="paper_checks", unit="run", disable=not progress, smoothing=0.05
    )
    for stage in plan.stages:
        if stage.kind == "theory":
            bar.set_postfix_str("linear theory")
            _theory(stage, plan, results, cache)
    bar.update(1)
    stage_of = {str(f): stage.name for stage in plan.stages for _, f in stage.runs}
    if pending:
        bar.set_postfix_str(f"training {len(pending)} runs ({reused} reused)")
        if jobs <= 1:
            with one_thread():
                for cfg, folder in pending:
                    bar.set_postfix_str(stage_of[folder])
                    _, error = _train(cfg, folder)
                    if error:
                        failed[folder] = error
                    bar.update(1)
        else:
            context = multiprocessing.get_context("spawn")  # no fork of a process that holds threads
            with cf.ProcessPoolExecutor(jobs, mp_context=context, initializer=_worker_init) as pool:
                futures = [pool.submit(_train, cfg, folder) for cfg, folder in pending]
                for future in cf.as_completed(futures):
                    folder, error = future.result()
                    if error:
                        failed[folder] = error
                    bar.set_postfix_str(stage_of[folder])
                    bar.update(1)
    bar.close()
    for stage in plan.stages:
        if stage.kind != "theory":
            finish_stage(stage, results)
    for folder, error in failed.items():
        log(f"run failed: {folder}: {error.splitlines()[0]}")
    summary = {
        "seconds": time.perf_counter() - start,
        "runs": len(todo),
        "trained": len(pending) - len(failed),
        "reused": reused,
        "failed": failed,
    }
    write_json_atomic(results / "plan.json", {**plan.to_dict(), "execution": summary})
    return summary
