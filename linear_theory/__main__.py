"""``python -m linear_theory``: every check of Sections 4-5 and Appendix D.1, as JSON records.

Prints one line per claim / part / reading with its overall verdict and how many regimes gave
each verdict; ``--json PATH`` writes the full records (a JSON list) atomically. An interrupted
run resumes from ``PATH.partial/`` (finished families are kept there until the run completes).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from invariant_aggregator import write_json_atomic

from .records import format_summary, summarise
from .sweep import FAMILIES, run_sweep


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m linear_theory", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", metavar="PATH", help="write the records here (a JSON list)")
    parser.add_argument("--quick", action="store_true", help="a reduced sweep (seconds instead of about a minute)")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default 0); the sweep is reproducible")
    parser.add_argument(
        "--only", nargs="+", choices=FAMILIES, metavar="FAMILY", help=f"run only these families: {', '.join(FAMILIES)}"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    out = Path(args.json) if args.json else None
    if out is not None and out.is_dir():
        parser.error(f"--json {out} is a directory; give a file path such as {out / 'linear_theory.json'}")
    checkpoint = out.with_name(out.name + ".partial") if out else None
    start = time.perf_counter()
    records, timings = run_sweep(
        quick=args.quick, seed=args.seed, checkpoint=checkpoint, only=args.only, progress=not args.no_progress
    )
    elapsed = time.perf_counter() - start
    print(format_summary(summarise(records)))
    print(
        f"\n{len(records)} records in {elapsed:.1f} s ("
        + ", ".join(f"{f} {t['seconds']:.1f} s{' resumed' if t['resumed'] else ''}" for f, t in timings.items())
        + ")"
    )
    if out is not None:
        write_json_atomic(out, records)
        if checkpoint.exists():
            shutil.rmtree(checkpoint)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
