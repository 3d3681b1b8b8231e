"""The Flower example app against deep_experiments on the same configuration: final Acc_M / Acc_B
per seed, and their means with standard errors.

    python benchmarks/flower_agreement.py --task spambase --defences invariant fedavg --seeds 0 1 2 \
        --out runs/flower-agreement --json benchmarks/flower-agreement.json

Same task, data split, malicious clients, attack, rule and per-client seeds; the two differ only in
which clients a round samples (Flower: Python's random over its node ids; the engine: numpy), so
they are expected to agree within seed noise, not bit for bit. Each side runs with one torch
thread per process (the engine sequentially, in this process; Flower's clients in two workers).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

import deep_experiments as de
from deep_experiments.api import run_or_reuse
from deep_experiments.flower_app import run_flower
from deep_experiments.grid import one_thread


def mean_se(values):
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="spambase")
    ap.add_argument("--scale", default="small")
    ap.add_argument("--defences", nargs="+", default=["invariant", "fedavg"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="runs/flower-agreement")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args()
    base = de.load_config(args.task, args.scale, overrides={"runtime.progress": False})
    rows = []
    for defence in args.defences:
        for seed in args.seeds:
            cfg = de.run_config(base, defence, seed=seed)
            t0 = time.perf_counter()
            with one_thread():
                engine = run_or_reuse(cfg, Path(args.out) / "engine" / defence / f"seed{seed}", progress=False)
            engine = engine or de.results.load_summaries([Path(args.out) / "engine" / defence / f"seed{seed}"])[0]
            t1 = time.perf_counter()
            flower = run_flower(cfg, Path(args.out) / "flower" / defence / f"seed{seed}", workers=args.workers)
            t2 = time.perf_counter()
            row = {"defence": defence, "seed": seed}
            for name, s, sec in (("engine", engine, t1 - t0), ("flower", flower, t2 - t1)):
                row |= {f"{name}_acc_m": s["acc_m"], f"{name}_acc_b": s["acc_b"], f"{name}_seconds": sec}
                row |= {f"{name}_acc_m_last10": s["acc_m_last10"], f"{name}_acc_b_last10": s["acc_b_last10"]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{args.task} ({args.scale}), seeds {args.seeds}: mean ± SE over seeds")
    print("| defence | engine Acc_M | Flower Acc_M | engine Acc_B | Flower Acc_B | diff Acc_M | diff Acc_B |")
    print("|---|---|---|---|---|---|---|")
    summary = []
    for defence in args.defences:
        mine = [r for r in rows if r["defence"] == defence]
        cell = {}
        for key in ("acc_m", "acc_b"):
            e, f = [r[f"engine_{key}"] for r in mine], [r[f"flower_{key}"] for r in mine]
            cell[key] = (mean_se(e), mean_se(f))
            # the two means differ by more than 2 SE of the difference of independent means?
            se = math.hypot(cell[key][0][1], cell[key][1][1])
            cell[f"{key}_diff"] = (cell[key][1][0] - cell[key][0][0], se)
        summary.append({"defence": defence, **{k: v for k, v in cell.items()}})
        fmt = lambda m: f"{m[0]:.3f} ± {m[1]:.3f}"  # noqa: E731
        print(
            f"| {defence} | {fmt(cell['acc_m'][0])} | {fmt(cell['acc_m'][1])} | {fmt(cell['acc_b'][0])} | "
            f"{fmt(cell['acc_b'][1])} | {fmt(cell['acc_m_diff'])} | {fmt(cell['acc_b_diff'])} |"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"task": args.task, "scale": args.scale, "rows": rows, "summary": summary}, indent=1)
        )


if __name__ == "__main__":
    main()
