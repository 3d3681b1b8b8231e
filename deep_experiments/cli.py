"""Command line: ``python -m deep_experiments {run, table1, table, config}``.

The only module that parses arguments: each command translates its flags into calls of the
programmatic entry points (:func:`deep_experiments.load_config`, :func:`deep_experiments.run`,
:mod:`deep_experiments.results`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import api, results
from .config import SCALES, load_config, parse_assignment, render
from .defences import defence_names
from .errors import ExperimentError
from .tasks import MODALITY, TASKS

EPILOG = """examples:
  python -m deep_experiments run phishing --defence invariant --seed 0 --out runs/ph-inv
  python -m deep_experiments run spambase --defence invariant --param tau=0.4 --out runs/sp-inv
  python -m deep_experiments run cifar10 --scale paper --data ~/data --defence krum --out runs/c10-krum
  python -m deep_experiments table1 phishing --seeds 0 1 2 --out runs/table1-phishing
  python -m deep_experiments study sensitivity spambase --out runs/tau-alpha-spambase
  python -m deep_experiments study attacks phishing --out runs/attacks-phishing   # every defence x attack
  python -m deep_experiments run spambase --defence invariant --set attack.evasion=mask_aware --out runs/adaptive
  python -m deep_experiments config cifar10 --scale paper > my.toml   # copy, edit, --config my.toml
  python -m deep_experiments grid my-grid.toml --out runs/grid --executor ray   # a grid on a local Ray instance
  python -m deep_experiments flower spambase --defence invariant --out runs/flower-sp   # as a Flower app
"""


def _params(assignments) -> dict:
    return dict(parse_assignment(a, "--param") for a in assignments or [])


def _base_config(args, task: str) -> dict:
    return load_config(task, args.scale, config_file=args.config, overrides=list(args.set or []))


def _run_options(args) -> dict:
    """What the flags say about every run of the command besides its defence and seed."""
    return {
        "params": _params(getattr(args, "param", None)),
        "data": args.data,
        "download": args.download,
        "device": args.device,
    }


def _run(args, base: dict, defence: str, seed: int, out) -> dict:
    return api.run(
        base, defence, seed=seed, out=out, restart=args.restart, progress=not args.no_progress, **_run_options(args)
    )


def cmd_run(args) -> int:
    summary = _run(args, _base_config(args, args.task), args.defence, args.seed, args.out)
    print(
        f"{args.task} / {args.defence} / seed {args.seed}: Acc_M = {summary['acc_m']:.4f}, "
        f"Acc_B = {summary['acc_b']:.4f} after {summary['rounds']} rounds, {summary['seconds']:.1f} s "
        f"-> {results.run_file(args.out, results.SUMMARY)}"
    )
    return 0


def _grid_options(args) -> dict:
    return {"executor": args.executor, "jobs": args.jobs, "address": args.address, "retries": args.retries}


def cmd_table1(args) -> int:
    rows = api.table1(
        _base_config(args, args.task),
        out=args.out,
        defences=args.defences,
        seeds=args.seeds or (range(5) if MODALITY[args.task] == "tabular" else range(3)),
        clean=not args.no_clean,
        params=_params(getattr(args, "param", None)),
        data=args.data,
        download=args.download,
        device=args.device,
        restart=args.restart,
        progress=not args.no_progress,
        log=lambda line: print(line, flush=True),
        **(_grid_options(args) | {"jobs": args.jobs or 1, "retries": args.retries or 0}),
    )
    print(results.to_markdown(rows))
    print("written:", ", ".join(str(Path(args.out) / f"{results.TABLE}.{x}") for x in ("json", "csv", "md")))
    return 0


def cmd_study(args) -> int:
    from . import diagnostics, studies

    base = _base_config(args, args.task)
    seeds = args.seeds or (range(5) if MODALITY[args.task] == "tabular" else range(3))
    log = (lambda line: print(line, flush=True)) if not args.no_progress else (lambda line: None)
    options = {"data": args.data, "download": args.download, "device": args.device}
    if args.kind == "attacks":
        from . import attack_matrix

        seeds = args.seeds or range(3)
        rows = attack_matrix.run_matrix(base, out=args.out, seeds=seeds, log=log, restart=args.restart, **options)
        print(attack_matrix.to_markdown(rows))
        return 0
    if args.kind == "mechanism":
        rows = studies.mechanism(base, out=args.out, seeds=seeds, log=log, restart=args.restart, **options)
        print(diagnostics.mechanism_markdown(rows))
        return 0
    variants = studies.sensitivity_variants() if args.kind == "sensitivity" else studies.ablation_variants()
    rows = studies.run_variants(base, variants, out=args.out, seeds=seeds, restart=args.restart, log=log, **options)
    print(results.to_markdown(rows))
    return 0


def cmd_grid(args) -> int:
    from . import grid

    spec = grid.load_spec(args.spec)
    options = _grid_options(args) | {"executor": args.executor or "auto"}
    report = grid.run_spec(
        spec,
        args.out,
        restart=args.restart,
        progress=not args.no_progress,
        log=lambda line: print(line, flush=True),
        data=args.data,
        download=args.download,
        device=args.device,
        **options,
    )
    print(
        f"{report.runs} runs on {report.executor}: {report.trained} trained, {report.reused} reused, "
        f"{len(report.failed)} failed, {len(report.attempts)} retried, {report.seconds:.1f} s "
        f"-> {Path(args.out) / grid.GRID_FILE}"
    )
    for folder, error in report.failed.items():
        print(f"failed: {folder}: {error.splitlines()[0]}", file=sys.stderr)
    return 1 if report.failed else 0


def cmd_flower(args) -> int:
    try:
        from . import flower_app
    except ImportError as exc:
        raise ExperimentError(str(exc)) from None
    cfg = api.run_config(_base_config(args, args.task), args.defence, seed=args.seed, **_run_options(args))
    summary = flower_app.run_flower(
        cfg, args.out, workers=args.workers, verbose=args.verbose, progress=not args.no_progress
    )
    print(
        f"{args.task} / {args.defence} / seed {args.seed} under Flower: Acc_M = {summary['acc_m']:.4f}, "
        f"Acc_B = {summary['acc_b']:.4f} after {summary['rounds']} rounds, {summary['seconds']:.1f} s "
        f"-> {results.run_file(args.out, results.SUMMARY)}"
    )
    return 0


def _grid_flags(p: argparse.ArgumentParser, default_executor: str | None) -> None:
    p.add_argument(
        "--executor",
        choices=("auto", "local", "ray"),
        default=default_executor,
        help="local processes, or Ray tasks (auto: Ray when installed)"
        + (f"; default {default_executor}" if default_executor else "; default auto"),
    )
    p.add_argument("--jobs", type=int, default=None, help="runs at once (default: grid, the CPUs available; table1, 1)")
    p.add_argument("--address", help="a Ray cluster to join (default: a private local Ray instance)")
    p.add_argument("--retries", type=int, default=None, help="tries again after a run fails (default 2; table1 0)")


def cmd_table(args) -> int:
    rows = results.table(results.load_summaries(args.folders))
    print(results.to_markdown(rows))
    if args.out:
        print("written:", ", ".join(map(str, results.write_table(rows, args.out))))
    return 0


def cmd_config(args) -> int:
    sys.stdout.write(render(args.task, args.scale))
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("task", choices=TASKS)
    p.add_argument("--scale", choices=SCALES, default="small", help="packaged configuration (default: small)")
    p.add_argument("--config", help="your configuration file (a copy of `config TASK`, edited)")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override one setting (repeatable)")
    p.add_argument("--data", help="where the task's data is (sets data.root / data.path)")
    p.add_argument("--download", action="store_true", help="fetch missing data (needs network)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when present)")
    p.add_argument("--restart", action="store_true", help="discard a checkpoint in the output folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m deep_experiments",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="one federated run")
    _common(run)
    run.add_argument("--defence", required=True, metavar="NAME", help=f"one of {', '.join(defence_names())}")
    run.add_argument("--param", action="append", metavar="NAME=VALUE", help="a hyperparameter of the defence")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--out", required=True, help="output folder (resumes from its checkpoint)")
    run.set_defaults(func=cmd_run)
    t1 = sub.add_parser("table1", help="every Table 1 row x seeds, then the table")
    _common(t1)
    t1.add_argument(
        "--seeds", type=int, nargs="+", help="default: 0..4 for the tabular tasks (cheap runs), 0 1 2 otherwise"
    )
    t1.add_argument(
        "--no-clean", action="store_true", help="skip each defence's runs without attackers (its utility cost)"
    )
    t1.add_argument("--defences", nargs="+", metavar="NAME", help="a subset of the rows (default: all)")
    t1.add_argument("--out", required=True)
    _grid_flags(t1, "local")
    t1.set_defaults(func=cmd_table1)
    gr = sub.add_parser("grid", help="a grid of runs from a TOML spec, on local processes or Ray")
    gr.add_argument("spec", help="the grid spec (TOML; see deep_experiments/grid.py)")
    gr.add_argument("--out", required=True)
    gr.add_argument("--data", help="where the tasks' data is (sets data.root / data.path)")
    gr.add_argument("--download", action="store_true", help="fetch missing data (needs network)")
    gr.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when present)")
    gr.add_argument("--restart", action="store_true", help="rerun finished runs too")
    gr.add_argument("--no-progress", action="store_true", help="no progress bar")
    _grid_flags(gr, None)
    gr.set_defaults(func=cmd_grid)
    fl = sub.add_parser("flower", help="one run as a Flower app (ServerApp + ClientApp) under Flower's simulation")
    _common(fl)
    fl.add_argument("--defence", required=True, metavar="NAME", help=f"one of {', '.join(defence_names())}")
    fl.add_argument("--param", action="append", metavar="NAME=VALUE", help="a hyperparameter of the defence")
    fl.add_argument("--seed", type=int, default=0)
    fl.add_argument("--out", required=True)
    fl.add_argument("--workers", type=int, help="client processes (default: the CPUs available)")
    fl.add_argument("--verbose", action="store_true", help="Flower's own log")
    fl.set_defaults(func=cmd_flower)
    sd = sub.add_parser(
        "study",
        help="Appendix D at small scale: the tau x alpha sensitivity, the D.2 ablation, or the mask's mechanism; "
        "or the attack x defence matrix (attacks)",
    )
    sd.add_argument("kind", choices=("sensitivity", "ablation", "mechanism", "attacks"))
    _common(sd)
    sd.add_argument(
        "--seeds", type=int, nargs="+", help="default: 0..4 for the tabular tasks, 0 1 2 otherwise (attacks: 0 1 2)"
    )
    sd.add_argument("--out", required=True)
    sd.set_defaults(func=cmd_study)
    tb = sub.add_parser("table", help="mean ± SE table from finished runs")
    tb.add_argument("folders", nargs="+")
    tb.add_argument("--out", help="write OUT.json, OUT.csv and OUT.md")
    tb.set_defaults(func=cmd_table)
    cf = sub.add_parser("config", help="print a packaged configuration (to copy and edit)")
    cf.add_argument("task", choices=TASKS)
    cf.add_argument("--scale", choices=SCALES, default="small")
    cf.set_defaults(func=cmd_config)
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except ExperimentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
