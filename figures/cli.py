"""The command line of :func:`figures.draw_all`: ``python -m figures RESULTS --out DIR`` draws every
figure whose result files are in RESULTS. It only translates arguments."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import FIGURES, draw_all


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m figures", description=__doc__)
    parser.add_argument("results", help="a results folder (paper_checks' OUT/results, or benchmarks/tabular-results)")
    parser.add_argument("--out", required=True, help="where to write NAME.png and NAME.pdf")
    parser.add_argument("--only", nargs="+", choices=sorted(FIGURES), metavar="NAME", help="draw only these")
    args = parser.parse_args(argv)
    if not Path(args.results).is_dir():
        parser.error(f"{args.results} is not a folder; give the results folder (e.g. OUT/results of paper_checks)")
    drawn = draw_all(args.results, args.out, args.only)
    for name, result in drawn.items():
        print(f"{name:>15}: {result[0] if isinstance(result, list) else 'not drawn: ' + result}")
    return 0 if any(isinstance(r, list) for r in drawn.values()) else 1
