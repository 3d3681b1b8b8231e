"""``python -m invariant_aggregator``: the two failure modes of Fig. 1, computed with the core."""

from __future__ import annotations

import argparse

from . import __version__
from .failure_modes import FAILURE_MODE_1, FAILURE_MODE_2, evaluate


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m invariant_aggregator", description=__doc__)
    parser.add_argument("--json", metavar="PATH", help="also write the records as JSON")
    args = parser.parse_args(argv)
    records = evaluate(FAILURE_MODE_1) + evaluate(FAILURE_MODE_2)
    print(f"invariant-aggregator {__version__}: failure modes of Fig. 1 (one coordinate, N = 10, N' = 2)")
    for mode in (FAILURE_MODE_1, FAILURE_MODE_2):
        print(f"\n{mode.name}: {mode.description}")
        print(f"  benign    {mode.benign.tolist()}  (mean {mode.benign.mean():+.3f})")
        print(f"  malicious {mode.malicious.tolist()}")
        print(f"  {'rule':<14}{'output':>10}  sign of benign mean?")
        for r in (r for r in records if r["mode"] == mode.name):
            print(f"  {r['rule']:<14}{r['output']:>+10.4f}  {'yes' if r['correct_sign'] else 'NO (fails)'}")
    if args.json:
        from ._io import write_json_atomic

        write_json_atomic(args.json, records)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
