"""Grids of runs (tasks x attacks x defences x seeds, and hyperparameter sweeps) on local processes
or on Ray, each run through the same entry point as a single run.

A grid is a list of (configuration, folder) pairs, planned by :func:`spec_runs` from a TOML spec
(or by :func:`deep_experiments.api.table1_runs`, ``paper_checks``' plan, ...), and carried out
by :func:`run_grid`:

* every run is :func:`deep_experiments.api.run_or_reuse` in its folder, so its files are exactly
  those of ``python -m deep_experiments run ... --out FOLDER``;
* before anything trains, finished runs of the identical configuration are counted as done
  (a re-launched grid skips them), and a folder holding a finished run of *another*
  configuration, or two runs planned into one folder, stop the grid with the folders named;
* a run that raises is retried up to ``retries`` times (an interrupted run resumes from its
  checkpoint), then reported with its error in :attr:`GridReport.failed`; the others go on;
* ``executor="local"``: ``jobs`` worker processes (spawned, one torch and numba thread each), or
  the calling process for ``jobs=1``; ``executor="ray"``: one Ray task per run, on a private
  local Ray instance (``address="local"``, the default: never a cluster that happens to run on
  the machine) or an existing cluster (``address="ray://HOST:10001"`` or ``"auto"``). On a
  cluster the run folders must be on a file system that every node and the driver share.
  Without Ray installed, ask for ``executor="local"``; ``"auto"`` picks Ray when it is there.

A grid spec (``python -m deep_experiments grid SPEC.toml --out DIR``)::

    tasks = ["spambase", "phishing"]     # required
    scale = "small"                      # the packaged configuration (default small)
    seeds = [0, 1, 2]                    # default [0]
    defences = ["fedavg", "invariant"]   # rule names, or ["table1"] for every Table 1 row
    attacks = ["edge_case", "alie"]      # names of deep_experiments.attack_matrix.ATTACKS (default edge_case)
    clean = true                         # also each defence without attackers (OUT/TASK/none/...)
    [set]                                # settings for every run
    "federation.rounds" = 20
    [[sweeps]]                           # a hyperparameter grid: every combination of the lists
    defence = "invariant"
    tau = [0.2, 0.4, 0.6]
    alpha = [0.1, 0.2]

Runs land in ``OUT/TASK/ATTACK/DEFENCE[-kV...]/seedS``; ``OUT/grid.json`` lists every run with
its status and the grid's counts, ``OUT/table.{json,csv,md}`` the table of finished runs.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import importlib.util
import itertools
import multiprocessing
import os
import re
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

import invariant_aggregator as ia

from . import results
from .api import attacked_and_clean, run_or_reuse, without_attackers
from .attack_matrix import ATTACKS, attack_config
from .config import load_config
from .defences import TABLE1_ROWS, check_defence_name
from .errors import ExperimentError
from .studies import variant_folder

__all__ = ["EXECUTORS", "GridReport", "load_spec", "one_thread", "run_grid", "run_spec", "spec_runs", "train_run"]

EXECUTORS = ("auto", "local", "ray")
SPEC_KEYS = {"tasks", "scale", "seeds", "defences", "attacks", "clean", "set", "sweeps", "retries"}
GRID_FILE = "grid.json"


# --------------------------------------------------------------------------- threads
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


# --------------------------------------------------------------------------- one attempt
def train_run(cfg: dict, folder: str, restart: bool = False) -> None:
    """What a grid does with one run: :func:`run_or_reuse` without a progress bar. A replacement
    (``run_grid(train=...)``) must be a module-level function with this signature."""
    run_or_reuse(cfg, folder, restart=restart, progress=False)


def _attempt(train, cfg: dict, folder: str, restart: bool) -> tuple[str, str | None, float]:
    """One try of one run: (folder, error or None, seconds). Errors are returned, not raised, so
    that the grid reports them with the run."""
    start = time.perf_counter()
    try:
        train(cfg, folder, restart)
    except Exception as exc:
        return folder, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}", time.perf_counter() - start
    return folder, None, time.perf_counter() - start


def _ray_attempt(train, cfg: dict, folder: str, restart: bool):
    _use_one_thread()  # a Ray worker of ours, given one CPU
    return _attempt(train, cfg, folder, restart)


# --------------------------------------------------------------------------- the report
@dataclass
class GridReport:
    """What a grid did: counts, each failed run's last error, each retried run's attempts."""

    runs: int
    executor: str
    reused: int = 0
    trained: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)  # runs that needed more than one
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def check_grid(runs, *, restart: bool = False) -> tuple[list[tuple[dict, str]], int]:
    """(pending runs, number already finished). Refuses, before anything trains, two runs in one
    folder and a folder whose finished run has another configuration."""
    seen: dict[str, dict] = {}
    pending, done, conflicts = [], 0, []
    for cfg, folder in runs:
        folder = str(folder)
        if folder in seen:
            if results.config_differences(seen[folder], cfg):
                raise ExperimentError(f"two runs of the grid are planned into one folder, {folder}; name them apart")
            continue  # the same run planned twice (e.g. a shared no-attack twin): once
        seen[folder] = cfg
        if not restart and results.is_finished(folder):
            changed = results.config_differences(results.load_summaries([folder])[0].get("config"), cfg)
            if changed:
                conflicts.append(f"{folder} ({'; '.join(changed[:3])})")
            else:
                done += 1
            continue
        pending.append((cfg, folder))
    if conflicts:
        raise ExperimentError(
            f"{len(conflicts)} folder(s) hold a finished run of another configuration: {', '.join(conflicts[:5])}"
            f"{' ...' if len(conflicts) > 5 else ''}; use another --out, or --restart to discard them"
        )
    return pending, done


def resolve_executor(executor: str, address: str | None = None) -> str:
    """The executor to use ("auto": Ray when installed); refuses an unknown one, Ray when it is
    not installed, and an address without Ray. Cheap: call it before expensive work."""
    if executor not in EXECUTORS:
        raise ExperimentError(f"executor {executor!r}: choose one of {', '.join(EXECUTORS)}")
    have_ray = importlib.util.find_spec("ray") is not None
    resolved = ("ray" if have_ray else "local") if executor == "auto" else executor
    if resolved == "ray" and not have_ray:
        raise ExperimentError(
            "executor 'ray' needs Ray: pip install 'invariant-aggregator[ray]', or use --executor local "
            "(the same grid in local processes)"
        )
    if address is not None and resolved != "ray":
        raise ExperimentError(f"address = {address!r} is for executor 'ray', not {executor!r}")
    return resolved


def run_grid(
    runs,
    *,
    executor: str = "local",
    jobs: int | None = None,
    address: str | None = None,
    retries: int = 2,
    restart: bool = False,
    progress: bool = True,
    single_thread: bool = True,
    log=print,
    log_finished: bool = True,
    train=train_run,
) -> GridReport:
    """Carry out the (configuration, folder) pairs of ``runs`` (see the module's docstring) and
    return what happened. ``jobs``: runs at once (default: the CPUs available; on a Ray cluster,
    as many as it schedules). ``single_thread``: with ``jobs=1`` locally, train in this process
    with one thread (restored afterwards), as the workers do. ``log`` gets one line per retried or
    failed run, and with ``log_finished`` one per finished run (its Acc_M and Acc_B)."""
    executor = resolve_executor(executor, address)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ExperimentError(f"retries must be an integer >= 0, got {retries!r}")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ExperimentError(f"jobs must be an integer >= 1, got {jobs!r}")
    runs = list(runs)
    pending, done = check_grid(runs, restart=restart)
    report = GridReport(runs=len(pending) + done, executor=executor, reused=done)
    start = time.perf_counter()
    bar = tqdm(total=report.runs, initial=done, desc="grid", unit="run", disable=not progress, smoothing=0.05)
    attempts: dict[str, int] = {}
    caller_log = log

    def log(line: str) -> None:
        with tqdm.external_write_mode():  # the line above the progress bar, not through it
            caller_log(line)

    def finished(folder: str, error: str | None, seconds: float) -> bool:
        """Record one attempt; True when the run should be tried again."""
        attempts[folder] = attempts.get(folder, 0) + 1
        if error is None:
            report.trained += 1
            if log_finished:
                log(f"done    {folder}{_accuracies(folder)} ({seconds:.1f} s)")
        elif attempts[folder] <= retries:
            log(f"retry   {folder} (attempt {attempts[folder]} failed: {error.splitlines()[0]})")
            return True
        else:
            report.failed[folder] = error
            log(f"FAILED  {folder} after {attempts[folder]} attempt(s): {error.splitlines()[0]}")
        bar.update(1)
        bar.set_postfix(failed=len(report.failed), refresh=False)
        return False

    try:
        if pending:
            if executor == "ray":
                _on_ray(pending, jobs, address, restart, train, finished)
            elif (jobs or _cpus()) == 1:
                _in_process(pending, restart, train, finished, single_thread)
            else:
                _on_processes(pending, jobs or _cpus(), restart, train, finished)
    finally:
        bar.close()
    report.attempts = {f: n for f, n in attempts.items() if n > 1}
    report.seconds = time.perf_counter() - start
    return report


def _accuracies(folder: str) -> str:
    try:
        s = results.load_summaries([folder])[0]
        return f"  Acc_M {s['acc_m']:.3f}  Acc_B {s['acc_b']:.3f}"
    except (ExperimentError, KeyError, TypeError):  # a replacement train function may write none
        return ""


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _in_process(pending, restart, train, finished, single_thread) -> None:
    with one_thread() if single_thread else contextlib.nullcontext():
        for cfg, folder in pending:
            if finished(*_attempt(train, cfg, folder, restart)):
                while finished(*_attempt(train, cfg, folder, False)):  # a retry resumes, never restarts
                    pass


def _on_processes(pending, jobs, restart, train, finished) -> None:
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds threads
    queue = [(cfg, folder, restart) for cfg, folder in pending]
    while queue:
        with cf.ProcessPoolExecutor(jobs, mp_context=context, initializer=_worker_init) as pool:
            futures = {pool.submit(_attempt, train, *job): job[:2] for job in queue}
            queue = []
            while futures:
                ready, _ = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
                for future in ready:
                    cfg, folder = futures.pop(future)
                    try:
                        outcome = future.result()
                    except cf.process.BrokenProcessPool as exc:  # a worker died (killed, out of memory)
                        outcome = (folder, f"worker process died: {exc}", 0.0)
                    if finished(*outcome):  # a retry resumes from the checkpoint, never restarts
                        try:
                            futures[pool.submit(_attempt, train, cfg, folder, False)] = (cfg, folder)
                        except cf.process.BrokenProcessPool:
                            queue.append((cfg, folder, False))  # the pool is gone: the next pool tries it


def _on_ray(pending, jobs, address, restart, train, finished) -> None:
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ours = not ray.is_initialized()
    if ours:
        target = address or "local"  # a private instance unless a cluster is named
        options = {"num_cpus": jobs or _cpus()} if target == "local" else {}
        ray.init(address=target, include_dashboard=False, log_to_driver=False, **options)
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(_ray_attempt)
        refs = {remote.remote(train, cfg, folder, restart): (cfg, folder) for cfg, folder in pending}
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            cfg, folder = refs.pop(ready[0])
            try:
                outcome = ray.get(ready[0])
            except ray.exceptions.RayError as exc:  # the worker died, or the task could not run
                text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # Ray colours its messages
                lines = [line.strip() for line in text.splitlines() if line.strip()]
                outcome = (folder, f"{type(exc).__name__}: {lines[-1] if lines else ''}\n{text}", 0.0)
            if finished(*outcome):  # a retry resumes from the checkpoint, never restarts
                refs[remote.remote(train, cfg, folder, False)] = (cfg, folder)
    finally:
        if ours:
            ray.shutdown()


# --------------------------------------------------------------------------- specs
def load_spec(path) -> dict:
    """Read and check a grid spec (module docstring); every problem is named before any run."""
    from .config import tomllib

    path = Path(path)
    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExperimentError(f"grid spec {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ExperimentError(f"grid spec {path} is not valid TOML: {exc}") from None
    return check_spec(spec, str(path))


def check_spec(spec: dict, where: str = "grid spec") -> dict:
    """The spec with its defaults filled in (seeds [0], attacks ["edge_case"], defences ["table1"]
    unless sweeps are given, scale "small", clean false, no settings, no sweeps, retries 2), every
    value checked."""
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise ExperimentError(f"{where}: unknown key(s) {unknown}; a spec has {sorted(SPEC_KEYS)}")
    from .tasks import TASKS

    spec = {
        "scale": "small",
        "seeds": [0],
        "attacks": ["edge_case"],
        "defences": [] if spec.get("sweeps") else ["table1"],
        "clean": False,
        "set": {},
        "sweeps": [],
        "retries": 2,
    } | spec
    tasks = spec.get("tasks")
    if not isinstance(tasks, list) or not tasks or any(t not in TASKS for t in tasks):
        raise ExperimentError(f"{where}: tasks must be a non-empty list of {', '.join(TASKS)}; got {tasks!r}")
    seeds = spec["seeds"]
    if not isinstance(seeds, list) or not seeds or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
        raise ExperimentError(f"{where}: seeds must be a non-empty list of integers; got {seeds!r}")
    attacks = spec["attacks"]
    if not isinstance(attacks, list) or not attacks or any(a not in ATTACKS for a in attacks):
        raise ExperimentError(f"{where}: attacks must be a list of {', '.join(ATTACKS)}; got {attacks!r}")
    defences = spec["defences"]
    if not isinstance(defences, list):
        raise ExperimentError(f"{where}: defences must be a list of names (or ['table1']); got {defences!r}")
    for d in defences:
        if d != "table1":
            check_defence_name(d)
    sweeps = spec["sweeps"]
    if not isinstance(sweeps, list):
        raise ExperimentError(f"{where}: sweeps must be an array of tables ([[sweeps]])")
    for s in sweeps:
        if not isinstance(s, dict) or "defence" not in s:
            raise ExperimentError(f"{where}: every [[sweeps]] needs defence = NAME; got {s!r}")
        check_defence_name(s["defence"])
        for k, v in s.items():
            if k != "defence" and not (isinstance(v, list) and v):
                raise ExperimentError(f"{where}: sweep {s['defence']}: {k} must be a non-empty list of values")
    if not defences and not sweeps:
        raise ExperimentError(f"{where}: name defences, sweeps, or both")
    if not isinstance(spec["set"], dict):
        raise ExperimentError(f"{where}: [set] must be a table of SECTION.KEY = value")
    if not isinstance(spec["clean"], bool):
        raise ExperimentError(f"{where}: clean must be true or false")
    if isinstance(spec["retries"], bool) or not isinstance(spec["retries"], int) or spec["retries"] < 0:
        raise ExperimentError(f"{where}: retries must be an integer >= 0; got {spec['retries']!r}")
    return spec


def _variants(spec: dict) -> list[tuple[str, dict]]:
    variants = []
    for d in spec["defences"]:
        variants += [(row, {}) for row in TABLE1_ROWS.values()] if d == "table1" else [(d, {})]
    for s in spec["sweeps"]:
        names = [k for k in s if k != "defence"]
        for values in itertools.product(*(s[k] for k in names)):
            variants.append((s["defence"], dict(zip(names, values, strict=True))))
    unique = []
    for v in variants:
        if v not in unique:
            unique.append(v)
    return unique


def spec_runs(spec: dict, out, *, data=None, download: bool = False, device=None) -> list[tuple[dict, Path]]:
    """The (configuration, folder) pairs of a spec (:func:`check_spec`), every configuration
    resolved (and so validated) here, before anything runs. A run that two attacks share (a
    defence's no-attack twin) is planned under each; :func:`run_grid` runs it once."""
    from .defences import NOT_APPLICABLE
    from .tasks import MODALITY

    spec = check_spec(spec)
    out = Path(out)
    options = {"data": data, "download": download, "device": device}
    runs = []
    for task in spec["tasks"]:
        base = load_config(task, spec["scale"], overrides=dict(spec["set"]))
        quiet = without_attackers(base) if spec["clean"] else None
        for attack in spec["attacks"]:
            config = attack_config(base, attack)
            for defence, params in _variants(spec):
                if (defence, MODALITY[task]) in NOT_APPLICABLE:
                    continue
                for seed in spec["seeds"]:
                    for kind, cfg in attacked_and_clean(config, quiet, defence, seed=seed, params=params, **options):
                        column = "none" if kind == "clean" else attack
                        runs.append((cfg, out / task / column / variant_folder(defence, params) / f"seed{seed}"))
    return runs


def run_spec(
    spec: dict,
    out,
    *,
    executor: str = "auto",
    jobs: int | None = None,
    address: str | None = None,
    retries: int | None = None,
    restart: bool = False,
    progress: bool = True,
    log=print,
    data=None,
    download: bool = False,
    device=None,
) -> GridReport:
    """Plan the grid of ``spec``, run it, and write ``out/grid.json`` (every run with its status,
    the counts) and ``out/table.{json,csv,md}`` (the finished runs)."""
    out = Path(out)
    spec = check_spec(spec)
    planned = spec_runs(spec, out, data=data, download=download, device=device)
    runs = list({str(folder): (cfg, folder) for cfg, folder in planned}.values())  # shared twins once
    report = run_grid(
        runs,
        executor=executor,
        jobs=jobs,
        address=address,
        retries=spec["retries"] if retries is None else retries,
        restart=restart,
        progress=progress,
        log=log,
    )
    status = []
    for cfg, folder in runs:
        f = str(folder)
        state = "failed" if f in report.failed else "finished" if results.is_finished(f) else "not run"
        status.append(
            {"folder": f, "task": cfg["task"], "defence": cfg["defence"], "seed": cfg["seed"], "status": state}
        )
    ia.write_json_atomic(out / GRID_FILE, {"report": report.to_dict(), "runs": status})
    finished = [folder for _, folder in runs if results.is_finished(folder)]
    if finished:
        results.write_table(results.table(results.load_summaries(finished)), out / results.TABLE)
    return report
