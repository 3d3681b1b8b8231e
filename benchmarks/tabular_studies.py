"""Every tabular experiment of issue 11, one command: per task (Spambase, phishing), Table 1 at
the fair small scale and at the paper-literal one (5 seeds, each defence with and without
attack), the mechanism diagnostic (FedAvg and the Invariant Aggregator, 5 seeds), the D.2
ablation and the tau x alpha sensitivity (3 seeds). The two tasks run side by side, one
process each with one torch thread (small MLPs train fastest on one), so the set uses two
cores. Finished runs of the identical configuration are reused, so an interrupted set resumes.

    python benchmarks/tabular_studies.py --out runs/issue11 --results benchmarks/tabular-results

prints the wall time of each part; the tables (``table.{json,csv,md}``, ``mechanism.{json,md}``)
are copied to ``--results``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

TASKS = ("spambase", "phishing")


def one_task(task: str, out: Path) -> None:
    import torch

    torch.set_num_threads(1)
    import deep_experiments as de
    from deep_experiments import studies

    def part(name, fn):
        start = time.perf_counter()
        fn()
        print(f"{task} {name}: {time.perf_counter() - start:.0f} s", flush=True)

    quiet = {"progress": False, "log": lambda line: None}
    for scale in ("small", "small-literal"):
        cfg = de.load_config(task, scale)
        part(
            f"table1 {scale}",
            lambda cfg=cfg, scale=scale: de.table1(cfg, out=out / f"{task}-{scale}", seeds=range(5), **quiet),
        )
    fair = de.load_config(task, "small")
    part("mechanism", lambda: studies.mechanism(fair, out=out / f"{task}-mechanism", seeds=range(5), log=quiet["log"]))
    for name, variants in (("ablation", studies.ablation_variants()), ("sensitivity", studies.sensitivity_variants())):
        part(
            name,
            lambda name=name, v=variants: studies.run_variants(
                fair, v, out=out / f"{task}-{name}", seeds=range(3), **quiet
            ),
        )


def collect(out: Path, results: Path) -> list[Path]:
    results.mkdir(parents=True, exist_ok=True)
    copied = []
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        for name in ("table.json", "table.csv", "table.md", "mechanism.json", "mechanism.md"):
            if (folder / name).exists():
                target = results / f"{folder.name}.{name}"
                shutil.copy(folder / name, target)
                copied.append(target)
    return copied


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="the run folders")
    p.add_argument("--results", type=Path, help="copy the tables here")
    p.add_argument("--task", choices=TASKS, help=argparse.SUPPRESS)  # one worker's share
    args = p.parse_args(argv)
    if args.task:
        one_task(args.task, args.out)
        return 0
    start = time.perf_counter()
    workers = [subprocess.Popen([sys.executable, __file__, "--out", str(args.out), "--task", t]) for t in TASKS]
    codes = [w.wait() for w in workers]
    print(f"all: {time.perf_counter() - start:.0f} s on two cores", flush=True)
    if args.results:
        print("tables:", ", ".join(map(str, collect(args.out, args.results))))
    return max(codes)


if __name__ == "__main__":
    raise SystemExit(main())
