"""A paper check is a function call: :func:`run` plans the experiments of a level, carries them
out (reusing every finished run), checks every claim on the results and writes the report."""

from __future__ import annotations

import datetime as dt
import shlex
import time
from pathlib import Path

from deep_experiments.grid import resolve_executor
from invariant_aggregator import write_json_atomic

from .claims import CLAIMS, run_all
from .evidence import Evidence
from .execute import run_plan
from .plan import TABULAR_TASKS, make_plan
from .report import write_report
from .table1 import paper_table1_records


def needed_kinds(claim_ids) -> tuple[str, ...]:
    """The stage kinds the given claims read (all claims: ``None``)."""
    unknown = [c for c in claim_ids if c not in CLAIMS]
    if unknown:
        raise ValueError(f"unknown claim(s) {', '.join(unknown)}; `python -m paper_checks --list` lists them")
    return tuple(sorted({k for c in claim_ids for k in CLAIMS[c].needs}))


def run(
    level: str = "quick",
    *,
    out="results/paper_checks",
    jobs: int = 1,
    executor: str = "local",
    address: str | None = None,
    only=None,
    overrides: dict | None = None,
    data: dict | None = None,
    tasks=TABULAR_TASKS,
    progress: bool = True,
    log=print,
    command: str | None = None,
) -> dict:
    """Check the paper's claims at ``level`` (quick, full or paper) into the folder ``out``:
    ``out/runs/`` (every training run), ``out/results/`` (the result files), ``out/figures/``,
    ``out/report.{html,md,json}``. ``only``: claim ids (the stages they need are all that runs).
    ``overrides``: dotted settings for every tabular configuration (they change the runs'
    folders). ``data``: {task: path}. ``tasks``: the tabular tasks to run (default both).
    ``jobs``, ``executor``, ``address``: how the training runs are spread
    (:func:`deep_experiments.grid.run_grid`: local worker processes, or Ray tasks on a private
    local instance or the cluster at ``address``). Returns the report (as written to report.json)."""
    import figures

    start = time.perf_counter()
    out = Path(out)
    kinds = needed_kinds(list(only or CLAIMS))  # an unknown claim id is refused here, before any work
    resolve_executor(executor, address)  # and so is an executor this machine cannot use
    claims = {c: CLAIMS[c] for c in only} if only else dict(CLAIMS)
    plan = make_plan(level, runs=out / "runs", kinds=kinds, tasks=tasks, overrides=overrides, data=data)
    log(
        f"paper_checks: {level} plan, {len(plan.stages)} stages, {plan.n_runs} training runs, "
        f"{len(claims)} claims -> {out}"
    )
    results = out / "results"
    execution = run_plan(
        plan,
        results=results,
        cache=out / "cache",
        jobs=jobs,
        executor=executor,
        address=address,
        progress=progress,
        log=log,
    )
    write_json_atomic(results / "paper_table1.json", paper_table1_records())
    drawn = figures.draw_all(results, out / "figures")
    entries = run_all(Evidence(results), claims)
    rerun = command or f"python -m paper_checks --{level} --out {shlex.quote(str(out))}"
    report = {
        "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": rerun + (f" --only {' '.join(only)}" if only else ""),
        "rerun": rerun,
        "wall_seconds": time.perf_counter() - start,
        "plan": {**plan.to_dict(), "execution": execution},
        "figures": {k: (v if isinstance(v, str) else [str(p) for p in v]) for k, v in drawn.items()},
        "claims": entries,
    }
    write_report(report, out)
    return report
