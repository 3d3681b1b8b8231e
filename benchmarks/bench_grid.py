"""Wall time of a grid of runs: one by one in this process, against Ray tasks on a private local
Ray instance and against local worker processes, interleaved in one run; then the re-launch of a
finished grid (every run skipped).

    python benchmarks/bench_grid.py --repeats 2 --jobs 2 --out runs/bench-grid
    python benchmarks/bench_grid.py --repeats 2 --jobs 2 --rounds 250 --out runs/bench-grid   # longer runs

The grid (24 runs by default): spambase and phishing at the small scale, FedAvg, the invariant
aggregator, the trimmed mean and Krum under the edge-case attack, seeds 0-2. Every arm starts
from empty folders (nothing reused), with one torch and numba thread per run; Ray's start-up and
shut-down are inside its time, as a user pays them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

from deep_experiments import grid

SPEC = {
    "tasks": ["spambase", "phishing"],
    "seeds": [0, 1, 2],
    "defences": ["fedavg", "invariant", "trimmed_mean", "krum"],
    "set": {"runtime.progress": False},
}


def timed(spec, out, **options) -> tuple[float, grid.GridReport]:
    start = time.perf_counter()
    report = grid.run_spec(spec, out, progress=False, log=lambda line: None, **options)
    return time.perf_counter() - start, report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default="runs/bench-grid")
    ap.add_argument("--rounds", type=int, help="federation.rounds for every run (default: the packaged 50)")
    ap.add_argument("--json", help="write the measurements here")
    args = ap.parse_args()
    spec = {**SPEC, "set": {**SPEC["set"], **({"federation.rounds": args.rounds} if args.rounds else {})}}
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    arms = {
        "sequential (this process)": {"executor": "local", "jobs": 1},
        f"ray ({args.jobs} workers, local instance)": {"executor": "ray", "jobs": args.jobs},
        f"local processes ({args.jobs})": {"executor": "local", "jobs": args.jobs},
    }
    times: dict[str, list[float]] = {name: [] for name in arms}
    n_runs = len(grid.spec_runs(spec, out / "plan"))
    for rep in range(args.repeats):
        for i, (name, options) in enumerate(arms.items()):
            seconds, report = timed(spec, out / f"{rep}-{i}", **options)
            assert report.trained == n_runs and not report.failed, report.to_dict()
            times[name].append(seconds)
            print(f"repeat {rep}: {name}: {seconds:.1f} s ({report.trained} runs)", flush=True)
    relaunch = {}
    for i, (name, options) in enumerate(arms.items()):
        seconds, report = timed(spec, out / f"{args.repeats - 1}-{i}", **options)
        assert report.trained == 0 and report.reused == n_runs
        relaunch[name] = seconds
    base = statistics.median(times["sequential (this process)"])
    print(f"\n{n_runs} runs; median of {args.repeats} repeats, interleaved")
    print("| executor | wall time (s) | vs one by one | re-launch, all finished (s) |")
    print("|---|---|---|---|")
    for name in arms:
        med = statistics.median(times[name])
        print(f"| {name} | {med:.1f} | {base / med:.2f}x | {relaunch[name]:.2f} |")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"runs": n_runs, "spec": spec, "seconds": times, "relaunch_seconds": relaunch}, indent=1)
        )


if __name__ == "__main__":
    main()
