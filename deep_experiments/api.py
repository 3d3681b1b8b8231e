"""A run is a function call: :func:`load_config`, then :func:`run`.

The command line, the benchmarks, the tests and every tool built on the experiments start runs
here; nothing outside ``cli.py`` parses arguments.

>>> import tempfile
>>> import deep_experiments as de
>>> cfg = de.load_config("phishing", overrides={"federation.rounds": 2, "federation.n_clients": 10,
...                      "federation.clients_per_round": 5, "data.samples_per_client": 40, "data.n_test": 100})
>>> with tempfile.TemporaryDirectory() as out:
...     summary = de.run(cfg, "invariant", seed=0, out=out, progress=False)
>>> summary["rounds"], sorted(summary["config"]["defence"]["params"])
(2, ['alpha', 'tau'])
"""

from __future__ import annotations

import numbers
from pathlib import Path

from . import results
from .config import load_config, with_overrides
from .defences import NOT_APPLICABLE, SETTINGS, TABLE1_ROWS, check_defence_name, resolve_defence, setting_overrides
from .engine import Run
from .errors import ExperimentError
from .tasks import MODALITY, data_overrides

__all__ = ["load_config", "run_config", "run", "run_or_reuse", "table1", "table1_rows", "table1_runs"]

RUN_KEYS = ("seed", "defence")  # what a run adds to the task's configuration


def run_config(
    config: dict, defence: str, *, seed: int = 0, params=None, data=None, download: bool = False, device=None
) -> dict:
    """The complete configuration of one run: ``config`` (from :func:`load_config`) with the
    data location, the defence's own settings (``no_attack``: no malicious client;
    ``freeze_layers``: clients train the last layer only) and the device applied, the seed, and
    the defence with its hyperparameters resolved (packaged defaults <- ``params``)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**63:
        raise ExperimentError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    base = {k: v for k, v in config.items() if k not in RUN_KEYS}
    overrides = data_overrides(base["task"], data, download) | setting_overrides(defence)
    if device is not None:
        overrides["runtime.device"] = str(device)
    cfg = with_overrides(base, overrides)
    cfg["seed"] = int(seed)
    cfg["defence"] = resolve_defence(defence, dict(params or {}), cfg, int(seed))
    return cfg


def run(
    config: dict,
    defence: str,
    *,
    seed: int = 0,
    out,
    params=None,
    data=None,
    download: bool = False,
    device=None,
    restart: bool = False,
    progress: bool = True,
) -> dict:
    """Train one federated run of ``defence`` (a rule of the core, ``no_attack`` or
    ``freeze_layers``) into the folder ``out`` and return its summary, which is also written to
    ``out/summary.json``. A run that was interrupted resumes from its checkpoint; another
    configuration in ``out`` is refused unless ``restart``."""
    cfg = run_config(config, defence, seed=seed, params=params, data=data, download=download, device=device)
    return Run(cfg, out, restart=restart).run(progress=progress)


def run_or_reuse(cfg: dict, folder, *, restart: bool = False, progress: bool = True) -> dict | None:
    """Run ``cfg`` (from :func:`run_config`) in ``folder``, unless the folder holds a finished
    run of exactly this configuration (then None: nothing ran); a finished run of another
    configuration is refused unless ``restart``."""
    folder = Path(folder)
    if not restart and results.is_finished(folder):
        changed = results.config_differences(results.load_summaries([folder])[0].get("config"), cfg)
        if not changed:
            return None
        raise ExperimentError(
            f"{folder} holds a finished run of another configuration ({'; '.join(changed[:5])}"
            f"{' ...' if len(changed) > 5 else ''}); use another --out, or --restart to discard it"
        )
    return Run(cfg, folder, restart=restart).run(progress=progress)


def without_attackers(config: dict) -> dict:
    """``config`` with ``federation.malicious_fraction = 0`` (the base of clean twins)."""
    return with_overrides(
        {k: v for k, v in config.items() if k not in RUN_KEYS}, {"federation.malicious_fraction": 0.0}
    )


def attacked_and_clean(config: dict, quiet: dict | None, defence: str, *, seed: int, params=None, **options):
    """The runs of one defence and seed: ("attack", its configuration) and, with ``quiet`` (from
    :func:`without_attackers`), ("clean", its twin): no attacker, and the hyperparameters the
    defence resolved under attack (Krum's f = "auto" kept). Settings rows have no twin."""
    attacked = run_config(config, defence, seed=seed, params=params, **options)
    runs = [("attack", attacked)]
    if quiet is not None and defence not in SETTINGS:
        fixed = dict(attacked["defence"]["params"])
        runs.append(("clean", run_config(quiet, defence, seed=seed, params=fixed, **options)))
    return runs


def table1_runs(
    config: dict,
    *,
    out,
    defences=None,
    seeds=(0, 1, 2),
    clean: bool | tuple = True,
    params=None,
    data=None,
    download: bool = False,
    device=None,
) -> tuple[list[tuple[dict, Path]], dict]:
    """The plan of :func:`table1` without running it: ``(runs, skipped)``, ``runs`` a list of
    (configuration, folder) and ``skipped`` {defence: why} for rows that do not apply to the
    task. ``clean``: no-attack twins for every row (True), none (False), or only for the
    defences named. Every defence name is checked here, before anything trains."""
    task = config["task"]
    defences = list(defences or TABLE1_ROWS.values())
    for defence in defences:
        check_defence_name(defence)
    skipped = {d: NOT_APPLICABLE[(d, MODALITY[task])] for d in defences if (d, MODALITY[task]) in NOT_APPLICABLE}
    out = Path(out)
    quiet = without_attackers(config) if clean else None
    options = {"data": data, "download": download, "device": device}
    runs = []
    for defence in (d for d in defences if d not in skipped):
        twin = quiet if clean is True or (clean and defence in clean) else None
        for seed in seeds:
            for kind, cfg in attacked_and_clean(config, twin, defence, seed=seed, params=params, **options):
                runs.append((cfg, (out / "clean" if kind == "clean" else out) / defence / f"seed{seed}"))
    return runs, skipped


def table1_rows(task: str, folders, skipped: dict, *, out) -> list[dict]:
    """Table 1's rows from the finished runs in ``folders`` (exactly those: a folder's older
    runs of other settings are never mixed in) and the ``skipped`` rows, written to
    ``out/table.{json,csv,md}``."""
    rows = results.table(results.load_summaries([f for f in folders if results.is_finished(f)]))
    label = {v: k for k, v in TABLE1_ROWS.items()}
    rows += [
        {"task": task, "defence": d, "row": label.get(d, d), "seeds": [], "differs": [], "not_applicable": why}
        for d, why in skipped.items()
    ]
    results.write_table(rows, Path(out) / results.TABLE)
    return rows


def table1(
    config: dict,
    *,
    out,
    defences=None,
    seeds=(0, 1, 2),
    clean: bool = True,
    params=None,
    data=None,
    download: bool = False,
    device=None,
    restart: bool = False,
    progress: bool = True,
    log=print,
    executor: str = "local",
    jobs: int = 1,
    address: str | None = None,
    retries: int = 0,
) -> list[dict]:
    """Table 1 for the task of ``config``: every defence (default: every row) under attack for
    each seed in ``out/DEFENCE/seedS``, and with ``clean`` the same defence, with the
    hyperparameters it had under attack, without attackers in ``out/clean/DEFENCE/seedS`` (its
    utility cost). Finished runs of the identical configuration are reused; rows that do not
    apply to the task's kind are reported as such. The runs are a grid
    (:func:`deep_experiments.grid.run_grid`): ``jobs`` at once, in local processes or on Ray
    (``executor``, ``address``), a failed run retried ``retries`` times; a run that still fails
    stops the table with its error. Returns the table's rows, also written to
    ``out/table.{json,csv,md}``."""
    from .grid import run_grid, train_run

    runs, skipped = table1_runs(
        config,
        out=out,
        defences=defences,
        seeds=seeds,
        clean=clean,
        params=params,
        data=data,
        download=download,
        device=device,
    )
    sequential = executor == "local" and jobs == 1
    report = run_grid(
        runs,
        executor=executor,
        jobs=jobs,
        address=address,
        retries=retries,
        restart=restart,
        progress=progress and not sequential,
        single_thread=False,  # in this process: the caller's thread settings
        log=log,
        train=_train_with_progress if sequential and progress else train_run,
    )
    if report.failed:
        first = next(iter(report.failed.items()))
        raise ExperimentError(
            f"{len(report.failed)} of {report.runs} runs failed; the first, {first[0]}: {first[1].splitlines()[0]}"
        )
    return table1_rows(config["task"], [f for _, f in runs], skipped, out=out)


def _train_with_progress(cfg: dict, folder: str, restart: bool = False) -> None:
    """A grid's run with its own progress bar (table1 one by one, in this process)."""
    run_or_reuse(cfg, folder, restart=restart, progress=True)
