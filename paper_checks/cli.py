"""Check every claim of the paper, draw every figure, write DIR/report.{html,md,json}.

python -m paper_checks --quick --out DIR   # 4 minutes on two cores (measured, 464 runs)
python -m paper_checks --full --out DIR    # every small-scale run: 17 minutes on two cores (measured)
python -m paper_checks --paper --out DIR   # --full plus Table 1 at the paper's scale, where possible

Finished runs are reused, so a re-run redoes only what is missing. (The command line of
paper_checks.api.run: it only translates arguments.)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter

from deep_experiments.config import parse_value
from deep_experiments.errors import ExperimentError

from .plan import TABULAR_TASKS


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m paper_checks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    level = parser.add_mutually_exclusive_group()
    level.add_argument("--quick", dest="level", action="store_const", const="quick", help="the quick plan (default)")
    level.add_argument("--full", dest="level", action="store_const", const="full", help="every small-scale run")
    level.add_argument("--paper", dest="level", action="store_const", const="paper", help="--full plus paper scale")
    parser.add_argument("--out", default="results/paper_checks", help="the run's folder (default results/paper_checks)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=_cpus(),
        help="worker processes for the training runs "
        "(default: the CPUs available to this process; each trains on one thread)",
    )
    parser.add_argument(
        "--executor",
        choices=("local", "ray", "auto"),
        default="local",
        help="where the training runs go: local worker processes (default) or Ray tasks (auto: Ray when installed)",
    )
    parser.add_argument("--address", help="with --executor ray: a Ray cluster to join (default: a private local one)")
    parser.add_argument("--only", nargs="+", metavar="CLAIM", help="check only these claims (and run what they need)")
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for every tabular configuration, e.g. federation.rounds=5 (changes the runs)",
    )
    parser.add_argument("--data", nargs="+", default=[], metavar="TASK=PATH", help="where a task's data is")
    parser.add_argument(
        "--tasks",
        nargs="+",
        choices=TABULAR_TASKS,
        default=list(TABULAR_TASKS),
        help="the tabular tasks to run (default: both)",
    )
    parser.add_argument("--list", action="store_true", help="list the claims and exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    from . import CLAIMS
    from .api import run

    if args.list:
        for claim in CLAIMS.values():
            print(f"{claim.id:45} {claim.source}")
        return 0
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    try:
        overrides = dict(_pair(item, "--set") for item in args.set)
        overrides = {k: parse_value(v) for k, v in overrides.items()}
        data = dict(_pair(item, "--data") for item in args.data)
    except ValueError as exc:
        parser.error(str(exc))
    level_ = args.level or "quick"
    command = (
        f"python -m paper_checks --{level_} --out {args.out}"
        + (f" --set {' '.join(args.set)}" if args.set else "")
        + (f" --data {' '.join(args.data)}" if args.data else "")
    )
    try:
        report = run(
            level_,
            out=args.out,
            jobs=args.jobs,
            executor=args.executor,
            address=args.address,
            only=args.only,
            overrides=overrides,
            data=data,
            tasks=tuple(args.tasks),
            progress=not args.no_progress,
            command=command,
        )
    except (ExperimentError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts = Counter(e["verdict"] for e in report["claims"])
    print(f"{len(report['claims'])} claims: " + ", ".join(f"{n} {v}" for v, n in counts.most_common()))
    print(f"{report['wall_seconds']:.0f} s; report: {args.out}/report.html (report.md and report.json beside it)")
    return 0


def _pair(item: str, flag: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ValueError(f"{flag} {item!r}: expected KEY=VALUE")
    return key, value
