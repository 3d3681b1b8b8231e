"""Seconds per federated round, split into local training / aggregation / evaluation.

CPU, small scale: every task (CIFAR-10 and Twitter on generated files in the real formats,
with the packaged ``small`` settings otherwise). With ``--paper-cifar`` (meant for a GPU):
CIFAR-10 ResNet-18 at paper scale (20 clients per round, 500 images each, ImageNet layout,
width 64) with the projected time of Table 1's CIFAR-10 column (14 rows x 3 seeds x 300 rounds).

    python benchmarks/bench_deep.py                       # CPU, all tasks, small scale
    python benchmarks/bench_deep.py --paper-cifar --device cuda [--amp]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from deep_experiments import Run, fixtures, load_config, run_config
from deep_experiments.defences import TABLE1_ROWS
from deep_experiments.engine import PHASES


def measure(task, data, sets, rounds, device, scale="small", defence="invariant", warmup=1):
    overrides = [*sets, f"federation.rounds={rounds + warmup}", "federation.eval_every=1", "runtime.progress=false"]
    cfg = run_config(load_config(task, scale, overrides=overrides), defence, seed=0, data=data, device=device)
    with tempfile.TemporaryDirectory() as out:
        run = Run(cfg, out)
        times = [run.step() for _ in range(rounds + warmup)][warmup:]
    configured = load_config(task, scale)["federation"]  # the measured run overrides rounds and eval_every
    return {k: statistics.median(t[k] for t in times) for k in PHASES} | {
        "params": run.layout.numel,
        "clients_per_round": cfg["federation"]["clients_per_round"],
        "configured_rounds": configured["rounds"],
        "configured_eval_every": configured["eval_every"],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--paper-cifar", action="store_true")
    ap.add_argument("--amp", action="store_true")
    ap.add_argument("--json", help="write the measurements here")
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        edge = [f"attack.edge_case_dir='{tmp / 'edge'}'", "attack.verify_edge_case=false"]
        fixtures.write_southwest(tmp / "edge", n_train=784, n_test=196)
        fixtures.write_lanthimos(tmp / "edge", n_train=259, n_test=120)
        amp = ["train.amp=true"] if args.amp else []
        if args.paper_cifar:
            fixtures.write_cifar10(tmp, per_batch=10_000, n_test=10_000)
            results["cifar10-paper"] = measure("cifar10", tmp, [*edge, *amp], args.rounds, args.device, "paper")
        else:
            fixtures.write_cifar10(tmp, per_batch=1000, n_test=1000)
            fixtures.write_sent140(tmp / "leaf", n_users=60, per_user=40, n_test=10)
            fixtures.write_glove(tmp / "glove.txt")
            results["cifar10-small"] = measure("cifar10", tmp, [*edge, *amp], args.rounds, args.device)
            results["twitter-small"] = measure(
                "twitter", tmp / "leaf", [*edge, f"data.glove='{tmp / 'glove.txt'}'"], args.rounds, args.device
            )
            results["phishing-small"] = measure("phishing", None, [], args.rounds, args.device)
            results["spambase-small"] = measure("spambase", None, [], args.rounds, args.device)
    print(f"{'task':>16} {'params':>10} {'local_train':>12} {'aggregation':>12} {'evaluation':>11}  (s/round, median)")
    for name, r in results.items():
        print(
            f"{name:>16} {r['params']:>10} {r['local_train']:>12.3f} {r['aggregation']:>12.4f} {r['evaluation']:>11.3f}"
        )
    if args.paper_cifar:
        r = results["cifar10-paper"]
        # the configuration's own rounds and evaluation interval, 3 seeds per Table 1 row
        per_round = r["local_train"] + r["aggregation"] + r["evaluation"] / r["configured_eval_every"]
        column = per_round * r["configured_rounds"] * len(TABLE1_ROWS) * 3
        print(
            f"paper-scale CIFAR-10 round: {per_round:.2f} s (target <= 1 s on one H100); Table 1 CIFAR-10 column "
            f"({len(TABLE1_ROWS)} rows x 3 seeds x {r['configured_rounds']} rounds): {column / 3600:.1f} h"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
